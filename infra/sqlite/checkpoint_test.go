package sqlite_test

import (
	"database/sql"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/sqlite"
	"github.com/rdev-hq/rdev/migrations"
)

func TestOpen_PageSize(t *testing.T) {
	t.Run("New", func(t *testing.T) {
		s := mustOpenMigrated(t)
		if got := pageSize(t, s); got != 16384 {
			t.Errorf("page_size = %d, want 16384", got)
		}
	})

	// A database made before the page size was raised keeps its own, and
	// works as before.
	t.Run("Existing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "rdev.db")
		old, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := old.Exec("CREATE TABLE before (x INTEGER)"); err != nil {
			t.Fatal(err)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		s := mustOpenFile(t, path)
		ctx := t.Context()
		if err := s.Migrate(ctx, migrations.SQLite()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if got := pageSize(t, s); got != 4096 {
			t.Errorf("page_size = %d, want 4096, as the database was made", got)
		}
		c := mustCreateCommand(t, s)
		want := []domain.OutputChunk{{CommandID: c.ID, Seq: 1, Stream: domain.Stdout, Data: strings.Repeat("x", 100<<10), At: time.Now().UTC().Truncate(time.Microsecond)}}
		if err := s.AppendOutput(ctx, domain.Lease{}, want); err != nil {
			t.Fatalf("AppendOutput: %v", err)
		}
		got, err := s.ReadOutput(ctx, c.ID, 0, 0, 0)
		if err != nil {
			t.Fatalf("ReadOutput: %v", err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("output (-stored +read):\n%s", diff)
		}
	})
}

// Committed rows reach the database file without anyone checkpointing:
// until a checkpoint their pages are only in the WAL, and writers checkpoint
// only at wal_autocheckpoint, far above what is written here.
func TestCheckpointer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rdev.db")
	s := mustOpenFile(t, path)
	ctx := t.Context()
	if err := s.Migrate(ctx, migrations.SQLite()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	before := fileSize(t, path)
	const size = 1 << 20
	for range 16 {
		now := time.Now()
		c := &domain.Command{ID: domain.NewID(now), ProjectID: "web", Type: domain.CommandExec, Argv: []string{"echo", strings.Repeat("y", size/16)}, Status: domain.CommandQueued, CreatedAt: now}
		if err := s.CreateCommand(ctx, c, nil); err != nil {
			t.Fatalf("CreateCommand: %v", err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); fileSize(t, path) < before+size; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("database file is %d bytes 10s after commits of %d, up from %d: nothing checkpointed the WAL", fileSize(t, path), size, before)
		}
	}
}

// Close stops the checkpointer; opening and closing stores leaks no goroutine.
func TestClose_Goroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 10 {
		path := filepath.Join(t.TempDir(), "rdev.db")
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := s.Migrate(t.Context(), migrations.SQLite()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	// database/sql's own goroutines end shortly after Close returns.
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after closing 10 stores, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
	}
}

func pageSize(tb testing.TB, s *bunstore.Store) int {
	tb.Helper()
	var n int
	if err := s.DB().QueryRowContext(tb.Context(), "PRAGMA page_size").Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// mustCreateCommand creates a queued command and returns it.
func mustCreateCommand(tb testing.TB, s *bunstore.Store) *domain.Command {
	tb.Helper()
	now := time.Now()
	c := &domain.Command{ID: domain.NewID(now), ProjectID: "web", Type: domain.CommandExec, Argv: []string{"true"}, Status: domain.CommandQueued, CreatedAt: now}
	if err := s.CreateCommand(tb.Context(), c, nil); err != nil {
		tb.Fatalf("CreateCommand: %v", err)
	}
	return c
}
