// Package migrations holds rdev's SQL schema as embedded bun migrations, one
// set per dialect. Files are named <14-digit version>_<name>.tx.up.sql and
// .tx.down.sql: each runs in its own transaction, and statements are separated
// by "--bun:split" lines. Run them with bunstore.Store.Migrate.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"

	"github.com/uptrace/bun/migrate"
)

//go:embed postgres/*.sql
var postgresFS embed.FS

//go:embed sqlite/*.sql
var sqliteFS embed.FS

// Postgres returns the migrations for PostgreSQL.
func Postgres() *migrate.Migrations { return discover(postgresFS, "postgres") }

// SQLite returns the migrations for SQLite.
func SQLite() *migrate.Migrations { return discover(sqliteFS, "sqlite") }

// discover builds a fresh set each time, so callers may not share state
// through it. The files are compiled in, so failing here is a bug in this
// package, caught by its tests: it panics rather than burden every caller.
func discover(fsys embed.FS, dir string) *migrate.Migrations {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(fmt.Sprintf("migrations: %s: %v", dir, err))
	}
	ms := migrate.NewMigrations()
	if err := ms.Discover(sub); err != nil {
		panic(fmt.Sprintf("migrations: %s: %v", dir, err))
	}
	return ms
}
