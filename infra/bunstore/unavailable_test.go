package bunstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"
	modernc "modernc.org/sqlite"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// freeAddr returns a loopback address nothing listens on.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// mustOpenDownStore returns a Postgres store whose server does not answer,
// opened as infra/postgres opens it (through Connector) if wrap is set.
func mustOpenDownStore(tb testing.TB, wrap bool) *Store {
	tb.Helper()
	var c driver.Connector = pgdriver.NewConnector(pgdriver.WithAddr(freeAddr(tb)), pgdriver.WithInsecure(true),
		pgdriver.WithUser("rdev"), pgdriver.WithDatabase("rdev"), pgdriver.WithDialTimeout(time.Second))
	if wrap {
		c = Connector(c)
	}
	s := New(bun.NewDB(sql.OpenDB(c), pgdialect.New()))
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// pgErrorWithCode returns the error pgdriver reports for a statement that
// raises SQLSTATE code, from the test database.
func pgErrorWithCode(tb testing.TB, code string) error {
	tb.Helper()
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(testenv.PostgresURL())))
	tb.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(tb.Context(), 5*time.Second)
	defer cancel()
	testenv.RequireService(tb, "Postgres", db.PingContext(ctx))
	_, err := db.ExecContext(ctx, fmt.Sprintf(`DO $$ BEGIN RAISE EXCEPTION 'raised' USING ERRCODE = '%s'; END $$`, code))
	if _, ok := errors.AsType[pgdriver.Error](err); !ok {
		tb.Fatalf("raise %s: got %v, want a pgdriver.Error", code, err)
	}
	return err
}

// sqliteError returns the error of SQL run on a fresh SQLite database (the
// driver's own *Error), after setup.
func sqliteErrorOf(tb testing.TB, setup []string, stmt string) error {
	tb.Helper()
	db, err := sql.Open("sqlite", filepath.Join(tb.TempDir(), "t.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	db.SetMaxOpenConns(1)
	for _, q := range setup {
		if _, err := db.ExecContext(tb.Context(), q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
	_, err = db.ExecContext(tb.Context(), stmt)
	if _, ok := errors.AsType[*modernc.Error](err); !ok {
		tb.Fatalf("%s: got %v, want a *sqlite.Error", stmt, err)
	}
	return err
}

func TestIsUnavailable(t *testing.T) {
	t.Run("ConnectionRefused", func(t *testing.T) {
		s := mustOpenDownStore(t, false)
		err := s.DB().PingContext(t.Context())
		if err == nil || !isUnavailable(err) {
			t.Errorf("ping of a closed port: isUnavailable(%v) = false", err)
		}
	})

	t.Run("Timeout", func(t *testing.T) {
		// A server that takes the connection and never answers, as a hung
		// or partitioned one does.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = ln.Close() }()
		db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithAddr(ln.Addr().String()),
			pgdriver.WithInsecure(true), pgdriver.WithTimeout(50*time.Millisecond)))
		defer func() { _ = db.Close() }()
		err = db.PingContext(t.Context())
		if err == nil || !isUnavailable(fmt.Errorf("query: %w", err)) {
			t.Errorf("isUnavailable(%v) = false", err)
		}
	})

	t.Run("SQLSTATE", func(t *testing.T) {
		for code, want := range map[string]bool{
			"08006": true, "08001": true, "57P01": true, "57P02": true, "57P03": true,
			"53300": true, "53100": true, "58030": true,
			"23505": false, "40001": false, "57014": false, "42P01": false,
		} {
			if err := pgErrorWithCode(t, code); isUnavailable(err) != want {
				t.Errorf("SQLSTATE %s: isUnavailable(%v) = %v, want %v", code, err, !want, want)
			}
		}
	})

	t.Run("AdminShutdown", func(t *testing.T) {
		// The session this query runs in is terminated, as a restart
		// terminates every session: Postgres says 57P01 and hangs up.
		err := pgErrorWithCodeFromTerminate(t)
		if !isUnavailable(err) {
			t.Errorf("isUnavailable(%v) = false", err)
		}
	})

	t.Run("SQLiteFull", func(t *testing.T) {
		err := sqliteErrorOf(t, []string{"PRAGMA max_page_count = 2", "CREATE TABLE t (b BLOB)"},
			"INSERT INTO t VALUES (zeroblob(1000000))")
		if !isUnavailable(err) {
			t.Errorf("isUnavailable(%v) = false", err)
		}
	})

	t.Run("SQLiteBusyAndIOErr", func(t *testing.T) {
		for _, code := range []int{5, 261, 10, 266, 13, 14} {
			if err := fmt.Errorf("x: %w", &fakeSQLiteError{code, "sqlite"}); !isUnavailable(err) {
				t.Errorf("SQLite code %d: isUnavailable = false", code)
			}
		}
		for _, code := range []int{19, 1555, 2067, 1, 6} {
			if err := (&fakeSQLiteError{code, "sqlite"}); isUnavailable(err) {
				t.Errorf("SQLite code %d: isUnavailable = true", code)
			}
		}
	})

	t.Run("Not", func(t *testing.T) {
		for _, err := range []error{
			nil, errors.New("boom"), sql.ErrNoRows, context.Canceled,
			fmt.Errorf("query: %w", context.DeadlineExceeded),
		} {
			if isUnavailable(err) {
				t.Errorf("isUnavailable(%v) = true", err)
			}
		}
	})
}

// pgErrorWithCodeFromTerminate returns the error of a query whose session
// an administrator terminates.
func pgErrorWithCodeFromTerminate(tb testing.TB) error {
	tb.Helper()
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(testenv.PostgresURL())))
	tb.Cleanup(func() { _ = db.Close() })
	ctx, cancel := context.WithTimeout(tb.Context(), 5*time.Second)
	defer cancel()
	testenv.RequireService(tb, "Postgres", db.PingContext(ctx))
	_, err := db.ExecContext(ctx, `SELECT pg_terminate_backend(pg_backend_pid())`)
	if pe, ok := errors.AsType[pgdriver.Error](err); !ok || pe.Field('C') != pgAdminShutdown {
		tb.Fatalf("terminate: got %v, want SQLSTATE %s", err, pgAdminShutdown)
	}
	return err
}

func TestStore_Unavailable(t *testing.T) {
	ctx := t.Context()
	check := func(t *testing.T, name string, err error) {
		t.Helper()
		// As a service would return it, wrapped once more.
		err = fmt.Errorf("%s: %w", name, err)
		if code := domain.ErrorCode(err); code != domain.EUNAVAILABLE {
			t.Errorf("%s: code %q, want %q (%v)", name, code, domain.EUNAVAILABLE, err)
		}
		if msg := domain.ErrorMessage(err); msg != "the database is unavailable" {
			t.Errorf("%s: client message %q", name, msg)
		}
	}

	t.Run("Methods", func(t *testing.T) {
		s := mustOpenDownStore(t, false)
		_, err := s.FindAPIKeyByID(ctx, "k1")
		check(t, "FindAPIKeyByID", err)
		_, err = s.FindCommandByID(ctx, "c1")
		check(t, "FindCommandByID", err)
		_, err = s.FindCommands(ctx, domain.CommandFilter{Limit: 10})
		check(t, "FindCommands", err)
		_, err = s.FindCommandByClientToken(ctx, "k1", "t1")
		check(t, "FindCommandByClientToken", err)
		_, err = s.FindWebhooks(ctx, domain.WebhookFilter{})
		check(t, "FindWebhooks", err)
		err = s.AppendAudit(ctx, &domain.AuditEntry{Action: domain.AuditCommandExecute})
		check(t, "AppendAudit", err)
		check(t, "Ping", s.Ping(ctx))
	})

	t.Run("Connector", func(t *testing.T) {
		// Every query needs a connection, so every method reports it.
		s := mustOpenDownStore(t, true)
		_, err := s.ReadOutput(ctx, "c1", 0, 10, 0)
		check(t, "ReadOutput", err)
		_, err = s.QueueStats(ctx)
		check(t, "QueueStats", err)
	})
}
