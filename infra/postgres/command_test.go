package postgres_test

import (
	"testing"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/postgres"
	"github.com/rdev-hq/rdev/infra/storetest"
	"github.com/rdev-hq/rdev/internal/testenv"
	"github.com/rdev-hq/rdev/migrations"
)

func TestCommandRepository(t *testing.T) {
	storetest.TestCommandRepository(t, func(t *testing.T) domain.CommandRepository {
		return mustOpenMigrated(t)
	})
}

// Three stores, each with its own connection pool, on one schema stand for
// three rdev processes sharing the database.
func TestClaimCommands_Race(t *testing.T) {
	stores := mustOpenShared(t, 3)
	storetest.TestClaimRace(t, []domain.CommandRepository{stores[0], stores[1], stores[2]}, 3, 1000)
}

func TestClaimCommands_Order(t *testing.T) {
	storetest.TestClaimOrderAtScale(t, mustOpenMigrated(t))
}

// mustOpenShared opens n stores on one new, migrated schema.
func mustOpenShared(tb testing.TB, n int) []*bunstore.Store {
	tb.Helper()
	dsn, _ := testenv.PostgresSchema(tb)
	var stores []*bunstore.Store
	for range n {
		s, err := postgres.Open(tb.Context(), dsn)
		if err != nil {
			tb.Fatalf("postgres.Open: %v", err)
		}
		tb.Cleanup(func() { _ = s.Close() })
		stores = append(stores, s)
	}
	if err := stores[0].Migrate(tb.Context(), migrations.Postgres()); err != nil {
		tb.Fatalf("Migrate: %v", err)
	}
	return stores
}

func TestAgentRunRepository(t *testing.T) {
	storetest.TestAgentRunRepository(t, func(t *testing.T) domain.AgentRunRepository {
		return mustOpenMigrated(t)
	})
}
