package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/sqlite"
	"github.com/rdev-hq/rdev/infra/storetest"
	"github.com/rdev-hq/rdev/migrations"
)

func TestCommandRepository(t *testing.T) {
	storetest.TestCommandRepository(t, func(t *testing.T) domain.CommandRepository {
		return mustOpenMigrated(t)
	})
}

// Two stores on one file stand for two processes sharing it. (More writers
// than that can starve one past busy_timeout under the race detector.)
func TestClaimCommands_Race(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rdev.db")
	first := mustOpenFile(t, path)
	if err := first.Migrate(t.Context(), migrations.SQLite()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	storetest.TestClaimRace(t, []domain.CommandRepository{first, mustOpenFile(t, path)}, 2, raceCommands)
}

func TestClaimCommands_Order(t *testing.T) {
	storetest.TestClaimOrderAtScale(t, mustOpenMigrated(t))
}

// mustOpenFile opens the database at path, closed when the test ends.
func mustOpenFile(t testing.TB, path string) *bunstore.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestAgentRunRepository(t *testing.T) {
	storetest.TestAgentRunRepository(t, func(t *testing.T) domain.AgentRunRepository {
		return mustOpenMigrated(t)
	})
}
