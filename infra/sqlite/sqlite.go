// Package sqlite opens rdev's embedded store: a SQLite file through the pure-Go
// driver modernc.org/sqlite, served by bunstore with bun's sqlitedialect.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/rdev-hq/rdev/infra/bunstore"
)

// busyTimeoutMillis is how long a connection waits for another's write lock
// before failing with SQLITE_BUSY.
const busyTimeoutMillis = 5000

// Open opens (creating if needed, with its parent directory) the SQLite
// database at path and returns a store on it. It applies no migrations: run
// store.Migrate(ctx, migrations.SQLite()). It returns EUNAVAILABLE if the file
// cannot be opened.
//
// The database uses WAL, so readers never wait for the writer, and every
// transaction begins IMMEDIATE, taking the write lock up front: a
// read-then-write transaction thus waits (up to busy_timeout) for another
// writer instead of failing with SQLITE_BUSY when it tries to upgrade.
func Open(ctx context.Context, path string) (*bunstore.Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create directory for %s: %w", path, err)
	}
	sqldb, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	// WAL allows one writer and many readers; more connections than that
	// only queue on the write lock.
	sqldb.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	sqldb.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	store := bunstore.New(bun.NewDB(sqldb, sqlitedialect.New()))
	if err := store.Ping(ctx); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return store, nil
}

// dsn is a SQLite URI for the file at the absolute path abs, with the
// settings every connection needs. The pragmas run on each new connection.
func dsn(abs string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMillis))
	q.Add("_pragma", "journal_mode(WAL)")
	// In WAL mode NORMAL never corrupts the database; a power cut may lose
	// the last commits, while a process crash loses nothing. It saves an
	// fsync per commit, which output appends make many of.
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	return u.String()
}
