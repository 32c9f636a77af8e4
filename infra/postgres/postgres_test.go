package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/postgres"
	"github.com/rdev-hq/rdev/infra/storetest"
	"github.com/rdev-hq/rdev/internal/testenv"
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
	storetest.TestMigrations(t, mustOpen, migrations.Postgres)
}

func TestOpen(t *testing.T) {
	t.Run("WithSchema", func(t *testing.T) {
		_, schema := testenv.PostgresSchema(t)
		s, err := postgres.Open(t.Context(), testenv.PostgresURL(), postgres.WithSchema(schema))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		var got string
		if err := s.DB().NewRaw("SELECT current_schema()").Scan(t.Context(), &got); err != nil {
			t.Fatal(err)
		}
		if got != schema {
			t.Errorf("current_schema() = %q, want %q", got, schema)
		}
	})

	t.Run("ErrUnavailable", func(t *testing.T) {
		t.Parallel()
		// Nothing listens on port 1.
		_, err := postgres.Open(t.Context(), "postgres://postgres:secret@127.0.0.1:1/test?sslmode=disable")
		if code := domain.ErrorCode(err); code != domain.EUNAVAILABLE {
			t.Fatalf("Open(unreachable) = %v (code %q), want code %q", err, code, domain.EUNAVAILABLE)
		}
		if msg := err.Error(); strings.Contains(msg, "secret") {
			t.Errorf("the error shows the password: %s", msg)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		t.Parallel()
		for _, dsn := range []string{"mysql://root@localhost/db", "postgres://u:p@[::1/x", "://"} {
			_, err := postgres.Open(t.Context(), dsn)
			if code := domain.ErrorCode(err); code != domain.EINVALID {
				t.Errorf("Open(%q) = %v (code %q), want code %q", dsn, err, code, domain.EINVALID)
			}
		}
	})

	// A password is never shown, wherever the URL has it: in its user
	// info, or as libpq's password parameter (and sslpassword).
	t.Run("ErrHidesPasswords", func(t *testing.T) {
		t.Parallel()
		for _, dsn := range []string{
			"postgres://postgres:s3cret-user@127.0.0.1:1/test?sslmode=disable&password=s3cret-param&sslpassword=s3cret-ssl",
			"postgres://postgres@127.0.0.1:1/test?password=s3cret-param&sslmode=bogus",
			"unix://?password=s3cret-param",
			"postgres://postgres@127.0.0.1:1/test?sslmode=disable&password=s3cret-param",
		} {
			_, err := postgres.Open(t.Context(), dsn)
			if err == nil {
				t.Fatalf("Open(%q) succeeded", dsn)
			}
			if msg := err.Error() + " " + domain.ErrorMessage(err); strings.Contains(msg, "s3cret") {
				t.Errorf("the error shows a password: %s", msg)
			}
		}
	})

	// libpq's password parameter is the password, as libpq takes it, not a
	// run-time parameter to set on each connection.
	t.Run("PasswordParameter", func(t *testing.T) {
		dsn, _ := testenv.PostgresSchema(t)
		s, err := postgres.Open(t.Context(), dsn+"&password=unused-with-trust")
		if err != nil {
			t.Fatalf("Open with ?password=: %v", err)
		}
		_ = s.Close()
	})
}

// mustOpen connects to a new, empty schema of the test database, dropped when
// the test ends.
func mustOpen(t *testing.T) *bunstore.Store {
	t.Helper()
	dsn, _ := testenv.PostgresSchema(t)
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func mustOpenMigrated(t *testing.T) *bunstore.Store {
	t.Helper()
	s := mustOpen(t)
	if err := s.Migrate(t.Context(), migrations.Postgres()); err != nil {
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

// Two stores, each with its own connection pool, on one schema stand for
// two rdev processes appending to one chain.
func TestAudit_Race(t *testing.T) {
	stores := mustOpenShared(t, 2)
	storetest.TestAuditRace(t, []storetest.AuditStore{stores[0], stores[1]}, 8, 25)
}

func auditDB(s *bunstore.Store) storetest.AuditDB {
	return storetest.AuditDB{Postgres: true, Exec: func(ctx context.Context, q string, args ...any) error {
		_, err := s.DB().ExecContext(ctx, q, args...)
		return err
	}}
}

func BenchmarkAuditedExecute(b *testing.B) {
	storetest.BenchmarkAuditedExecute(b, func(b *testing.B) storetest.AuditStore {
		return mustOpenShared(b, 1)[0]
	})
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

// Three stores on one database stand for three rdev processes.
func TestWebhookQueue_Shared(t *testing.T) {
	stores := mustOpenShared(t, 3)
	storetest.TestWebhookQueueShared(t, []storetest.WebhookQueueStore{stores[0], stores[1], stores[2]}, 4, 15)
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
