// Package postgres opens rdev's production store: PostgreSQL through bun's
// pgdriver, served by bunstore with bun's pgdialect.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"runtime"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"
	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
)

// Option configures Open.
type Option func(*options)

type options struct {
	schema string
}

// WithSchema sets every connection's search_path to the one schema name, so
// rdev's tables (and bun's migration tables) live there. The schema must
// exist. A search_path parameter in the DSN does the same.
func WithSchema(name string) Option {
	return func(o *options) { o.schema = name }
}

// Open connects to the database at dsn, a URL such as
// postgres://user:pass@host:5432/db?sslmode=disable (unknown parameters, such
// as search_path, are set on each connection), and checks that it answers. It
// applies no migrations: run store.Migrate(ctx, migrations.Postgres()). It
// returns EINVALID for a malformed DSN and EUNAVAILABLE, wrapping the cause,
// if the database cannot be reached.
func Open(ctx context.Context, dsn string, opts ...Option) (*bunstore.Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	safeDSN, err := redact(dsn)
	if err != nil {
		return nil, err
	}
	driverOpts := []pgdriver.Option{pgdriver.WithDSN(dsn)}
	if o.schema != "" {
		driverOpts = append(driverOpts, withConnParam("search_path", o.schema))
	}
	connector, err := newConnector(driverOpts...)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "database URL %s: %v", safeDSN, err)
	}
	sqldb := sql.OpenDB(bunstore.Connector(connector))
	// bun's advice for pgdriver: a few connections per CPU.
	maxConns := 4 * runtime.GOMAXPROCS(0)
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)

	store := bunstore.New(bun.NewDB(sqldb, pgdialect.New()))
	if err := store.Ping(ctx); err != nil {
		_ = store.Close()
		return nil, fmt.Errorf("postgres %s: %w", safeDSN, err)
	}
	return store, nil
}

// withConnParam adds a run-time parameter to those taken from the DSN.
func withConnParam(name string, value any) pgdriver.Option {
	return func(c *pgdriver.Config) {
		if c.ConnParams == nil {
			c.ConnParams = map[string]any{}
		}
		c.ConnParams[name] = value
	}
}

// newConnector turns pgdriver's panic on a malformed DSN into an error.
func newConnector(opts ...pgdriver.Option) (c *pgdriver.Connector, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return pgdriver.NewConnector(opts...), nil
}

// redact returns dsn without its password, for messages. It returns EINVALID
// if dsn is not a URL.
func redact(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		// url's error quotes the input, password and all.
		return "", domain.Errorf(domain.EINVALID, "database URL: not a valid URL such as postgres://user@host:5432/db")
	}
	return u.Redacted(), nil
}
