package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/sqlite"
	"github.com/rdev-hq/rdev/infra/storetest"
	"github.com/rdev-hq/rdev/migrations"
)

func TestAPIKeyRepository(t *testing.T) {
	storetest.TestAPIKeyRepository(t, func(t *testing.T) domain.APIKeyRepository {
		return mustOpenMigrated(t)
	})
}

func TestAPIKeyChangedBySQL(t *testing.T) {
	storetest.TestAPIKeyChangedBySQL(t, func(t *testing.T) (domain.APIKeyRepository, storetest.AuditDB) {
		s := mustOpenMigrated(t)
		return s, auditDB(s)
	})
}

func TestMigrations(t *testing.T) {
	storetest.TestMigrations(t, mustOpen, migrations.SQLite)
}

func TestOpen(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a", "b", "rdev.db")
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open(%s): %v", path, err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("database file: %v", err)
		}
		// Every pooled connection must have the settings, not just the first.
		ctx := t.Context()
		for i := range 3 {
			conn, err := s.DB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var journal string
			var fk, busy, autocheckpoint, sizeLimit int
			if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&journal); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&autocheckpoint); err != nil {
				t.Fatal(err)
			}
			if err := conn.QueryRowContext(ctx, "PRAGMA journal_size_limit").Scan(&sizeLimit); err != nil {
				t.Fatal(err)
			}
			if journal != "wal" || fk != 1 || busy < 1000 {
				t.Errorf("connection %d: journal_mode=%s foreign_keys=%d busy_timeout=%d; want wal, 1, >=1000", i, journal, fk, busy)
			}
			// Writers checkpoint late (the checkpointer does it before them),
			// and a WAL grown by a burst is cut back.
			if autocheckpoint <= 1000 || sizeLimit <= 0 {
				t.Errorf("connection %d: wal_autocheckpoint=%d journal_size_limit=%d; want above 1000 and a limit", i, autocheckpoint, sizeLimit)
			}
		}
	})

	t.Run("PathWithQueryCharacters", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "odd?name#x&y=z.db")
		s, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("Open(%s): %v", path, err)
		}
		_ = s.Close()
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("the database is not at the path given: %v", err)
		}
	})

	t.Run("OwnerOnly", func(t *testing.T) {
		// A new database, its WAL and shared memory are 0600 in a 0700
		// directory; an existing database left open to others is tightened.
		dir := filepath.Join(t.TempDir(), "data")
		path := filepath.Join(dir, "rdev.db")
		for _, loose := range []bool{false, true} {
			if loose {
				for _, f := range []string{path, path + "-wal"} {
					if err := os.WriteFile(f, nil, 0o644); err != nil && !os.IsExist(err) {
						t.Fatal(err)
					}
					if err := os.Chmod(f, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			s, err := sqlite.Open(t.Context(), path)
			if err != nil {
				t.Fatalf("Open(%s): %v", path, err)
			}
			if err := s.Migrate(t.Context(), migrations.SQLite()); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{dir, path, path + "-wal", path + "-shm"} {
				want := os.FileMode(0o600)
				if f == dir {
					want = 0o700
				}
				if info, err := os.Stat(f); err != nil || info.Mode().Perm() != want {
					t.Errorf("loose=%v: %s: %v, %v; want mode %#o", loose, f, info.Mode(), err, want)
				}
			}
			_ = s.Close()
		}
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		// A directory where the file should be.
		path := t.TempDir()
		s, err := sqlite.Open(t.Context(), path)
		if err == nil {
			_ = s.Close()
		}
		if code := domain.ErrorCode(err); code != domain.EUNAVAILABLE {
			t.Fatalf("Open(a directory) = %v (code %q), want code %q", err, code, domain.EUNAVAILABLE)
		}
	})
}

// Writers on many connections must queue for the write lock, not fail with
// SQLITE_BUSY.
func TestConcurrentWrites(t *testing.T) {
	s := mustOpenMigrated(t)
	ctx := t.Context()
	k := &domain.APIKey{ID: domain.NewID(time.Now()), Name: "k", Scopes: domain.Scopes{domain.ScopeAdmin}, SecretHash: "x", CreatedAt: time.Now()}
	if err := s.CreateAPIKey(ctx, k, nil); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			switch i % 4 {
			case 0:
				_, err = s.UpdateAPIKey(ctx, k.ID, func(k *domain.APIKey) error { k.RateLimit++; return nil }, nil)
			case 1:
				err = s.CreateAPIKey(ctx, &domain.APIKey{ID: domain.NewID(time.Now()), Name: "k", SecretHash: "x", CreatedAt: time.Now()}, nil)
			case 2:
				err = s.TouchAPIKeys(ctx, map[string]time.Time{k.ID: time.Now()})
			case 3:
				_, err = s.FindAPIKeys(ctx, domain.APIKeyFilter{})
			}
			if err != nil {
				t.Errorf("operation %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got, err := s.FindAPIKeyByID(ctx, k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := (n + 3) / 4; got.RateLimit != want {
		t.Errorf("RateLimit = %d, want %d", got.RateLimit, want)
	}
}

// mustOpen opens an empty database in a fresh temporary file.
func mustOpen(t *testing.T) *bunstore.Store {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "rdev.db"))
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

// mustOpenMigrated opens a fresh, fully migrated database.
func mustOpenMigrated(t testing.TB) *bunstore.Store {
	t.Helper()
	s := mustOpenFile(t, filepath.Join(t.TempDir(), "rdev.db"))
	if err := s.Migrate(t.Context(), migrations.SQLite()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return s
}

func TestAuditRepository(t *testing.T) {
	storetest.TestAuditRepository(t, func(t *testing.T) (storetest.AuditStore, storetest.AuditDB) {
		s := mustOpenMigrated(t)
		return s, auditDB(s)
	})
}

// Two stores on one database file stand for two rdev processes.
func TestAudit_Race(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rdev.db")
	a, b := mustOpenFile(t, path), mustOpenFile(t, path)
	if err := a.Migrate(t.Context(), migrations.SQLite()); err != nil {
		t.Fatal(err)
	}
	storetest.TestAuditRace(t, []storetest.AuditStore{a, b}, 4, 25)
}

func auditDB(s *bunstore.Store) storetest.AuditDB {
	return storetest.AuditDB{Exec: func(ctx context.Context, q string, args ...any) error {
		_, err := s.DB().ExecContext(ctx, q, args...)
		return err
	}}
}

func BenchmarkAuditedExecute(b *testing.B) {
	storetest.BenchmarkAuditedExecute(b, func(b *testing.B) storetest.AuditStore { return mustOpenMigrated(b) })
}

func TestWebhookRepository(t *testing.T) {
	storetest.TestWebhookRepository(t, func(t *testing.T) storetest.WebhookStore { return mustOpenMigrated(t) })
}

func TestWebhookOutbox(t *testing.T) {
	storetest.TestWebhookOutbox(t, func(t *testing.T) storetest.WebhookStore { return mustOpenMigrated(t) })
}

func TestWebhookQueue(t *testing.T) {
	storetest.TestWebhookQueue(t, func(t *testing.T) storetest.WebhookQueueStore { return mustOpenMigrated(t) })
}

func TestWebhookQueue_Shared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rdev.db")
	a, b := mustOpenFile(t, path), mustOpenFile(t, path)
	if err := a.Migrate(t.Context(), migrations.SQLite()); err != nil {
		t.Fatal(err)
	}
	storetest.TestWebhookQueueShared(t, []storetest.WebhookQueueStore{a, b}, 4, 10)
}

func TestWebhookSealing(t *testing.T) {
	storetest.TestWebhookSealing(t, func(t *testing.T) storetest.WebhookSealingStore { return mustOpenMigrated(t) })
}

func TestSecretRepository(t *testing.T) {
	storetest.TestSecretRepository(t, func(t *testing.T) storetest.SecretStore { return mustOpenMigrated(t) })
}

func TestCommandEnvRewrap(t *testing.T) {
	storetest.TestCommandEnvRewrap(t, func(t *testing.T) storetest.CommandEnvSealingStore { return mustOpenMigrated(t) })
}

func TestProjectNetworkRepository(t *testing.T) {
	storetest.TestProjectNetworkRepository(t, func(t *testing.T) storetest.ProjectNetworkStore { return mustOpenMigrated(t) })
}
