package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
)

// PostgresURLEnv names the variable holding the test database's URL.
const PostgresURLEnv = "RDEV_TEST_DATABASE_URL"

// DefaultPostgresURL is used when RDEV_TEST_DATABASE_URL is unset.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// PostgresURL returns the test database's URL.
func PostgresURL() string {
	if u := os.Getenv(PostgresURLEnv); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// postgresAdmin is one connection pool per test binary, used only to create
// and drop schemas.
var postgresAdmin = sync.OnceValues(func() (*sql.DB, error) {
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(PostgresURL())))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("postgres at %s: %w", redacted(PostgresURL()), err)
	}
	return db, nil
})

// PostgresSchema creates an empty schema with a random name in the test
// database, drops it (and everything in it) when the test ends, and returns a
// URL whose connections use it (search_path), so tests running in parallel,
// in this binary or another, never see each other's tables. It skips or fails
// the test, per RequireService, if Postgres is unreachable.
func PostgresSchema(tb testing.TB) (dsn, schema string) {
	tb.Helper()
	db, err := postgresAdmin()
	RequireService(tb, "Postgres", err)

	schema = "rdev_test_" + strings.ToLower(rand.Text()[:16])
	// The name is ours: letters and digits, so quoting it is enough.
	if _, err := db.ExecContext(tb.Context(), `CREATE SCHEMA "`+schemaIdent(schema)+`"`); err != nil {
		tb.Fatalf("create schema %s: %v", schema, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA "`+schemaIdent(schema)+`" CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", schema, err)
		}
	})

	u, err := url.Parse(PostgresURL())
	if err != nil {
		tb.Fatalf("%s: %v", PostgresURLEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), schema
}

func schemaIdent(s string) string {
	for _, r := range s {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '_') {
			panic("testenv: unexpected schema name " + s)
		}
	}
	return s
}

func redacted(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}
