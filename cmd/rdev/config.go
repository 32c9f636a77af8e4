package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/uptrace/bun/migrate"

	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/postgres"
	"github.com/rdev-hq/rdev/infra/sqlite"
	"github.com/rdev-hq/rdev/migrations"
)

// storeConfig is the database configuration every subcommand shares.
type storeConfig struct {
	DatabaseURL string
	DataDir     string
}

func (c *storeConfig) register(f *envFlags) {
	f.String(&c.DatabaseURL, "database-url", "DATABASE_URL", "",
		"PostgreSQL URL, e.g. postgres://user@host:5432/db?sslmode=disable; empty uses SQLite in the data directory")
	f.String(&c.DataDir, "data-dir", "RDEV_DATA_DIR", defaultDataDir, "directory of the embedded SQLite database (rdev.db, with its output in rdev.db-output/), of the local executor's records of running process groups, and of results kept while storage refuses them (pending-results/)")
}

// defaultDataDir is the data directory unless told otherwise: relative to
// the directory rdev runs in, so serve and keys must run in the same one.
const defaultDataDir = "./data"

// embedded reports whether rdev runs on its embedded SQLite database.
func (c *storeConfig) embedded() bool { return c.DatabaseURL == "" }

// where describes the database for log lines, without credentials: the
// SQLite file's absolute path, so that it says which of several it is.
func (c *storeConfig) where() string {
	if c.embedded() {
		path, err := filepath.Abs(c.sqlitePath())
		if err != nil {
			path = c.sqlitePath()
		}
		return "sqlite:" + path
	}
	return "postgres"
}

// kind names the database without saying where it is: sqlite or postgres.
func (c *storeConfig) kind() string {
	if c.embedded() {
		return "sqlite"
	}
	return "postgres"
}

func (c *storeConfig) sqlitePath() string { return filepath.Join(c.DataDir, "rdev.db") }

// open opens the configured store and returns it with its migrations.
func (c *storeConfig) open(ctx context.Context) (*bunstore.Store, *migrate.Migrations, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if c.embedded() {
		s, err := sqlite.Open(ctx, c.sqlitePath())
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", c.where(), err)
		}
		return s, migrations.SQLite(), nil
	}
	s, err := postgres.Open(ctx, c.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", c.where(), err)
	}
	return s, migrations.Postgres(), nil
}

// errNoDatabase is openExisting's answer for a database that is not there
// yet.
var errNoDatabase = errors.New("no rdev database there yet")

// openExisting opens the store, as openMigrated does, if it exists: an
// embedded database whose file is there, a Postgres one with rdev's schema
// (some migration applied). Otherwise it returns errNoDatabase, unless
// create.
func (c *storeConfig) openExisting(ctx context.Context, create bool) (*bunstore.Store, error) {
	if c.embedded() && !create {
		if _, err := os.Stat(c.sqlitePath()); errors.Is(err, fs.ErrNotExist) {
			return nil, errNoDatabase
		}
	}
	s, ms, err := c.open(ctx)
	if err != nil {
		return nil, err
	}
	if !c.embedded() && !create {
		states, err := s.MigrationStatus(ctx, ms)
		if err != nil || len(states) == 0 || !states[0].Applied {
			_ = s.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.where(), err)
			}
			return nil, errNoDatabase
		}
	}
	if err := s.Migrate(ctx, ms); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("migrate %s: %w", c.where(), err)
	}
	return s, nil
}

// openMigrated opens the store and brings its schema up to date.
func (c *storeConfig) openMigrated(ctx context.Context) (*bunstore.Store, *migrate.Migrations, error) {
	s, ms, err := c.open(ctx)
	if err != nil {
		return nil, nil, err
	}
	if err := s.Migrate(ctx, ms); err != nil {
		_ = s.Close()
		return nil, nil, fmt.Errorf("migrate %s: %w", c.where(), err)
	}
	return s, ms, nil
}
