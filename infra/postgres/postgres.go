// Package postgres opens rdev's production store: PostgreSQL through bun's
// pgdriver, served by bunstore with bun's pgdialect.
package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"runtime"
	"strings"

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
// postgres://user:pass@host:5432/db?sslmode=disable (a password parameter,
// as libpq takes it, is the password too; other unknown parameters, such as
// search_path, are set on each connection), and checks that it answers. It
// applies no migrations: run store.Migrate(ctx, migrations.Postgres()). It
// returns EINVALID for a malformed DSN and EUNAVAILABLE, wrapping the cause,
// if the database cannot be reached. No error it returns shows a password.
func Open(ctx context.Context, dsn string, opts ...Option) (*bunstore.Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		// url's error quotes the input, password and all.
		return nil, domain.Errorf(domain.EINVALID, "database URL: not a valid URL such as postgres://user@host:5432/db")
	}
	secrets := passwords(u)
	usePasswordParameter(u)
	safeDSN := redacted(u)
	driverOpts := []pgdriver.Option{pgdriver.WithDSN(u.String())}
	if o.schema != "" {
		driverOpts = append(driverOpts, withConnParam("search_path", o.schema))
	}
	connector, err := newConnector(driverOpts...)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "database URL %s: %s", safeDSN, scrub(err.Error(), secrets))
	}
	sqldb := sql.OpenDB(bunstore.Connector(connector))
	// bun's advice for pgdriver: a few connections per CPU.
	maxConns := 4 * runtime.GOMAXPROCS(0)
	sqldb.SetMaxOpenConns(maxConns)
	sqldb.SetMaxIdleConns(maxConns)

	store := bunstore.New(bun.NewDB(sqldb, pgdialect.New()))
	if err := store.Ping(ctx); err != nil {
		_ = store.Close()
		return nil, scrubbed{fmt.Errorf("postgres %s: %w", safeDSN, err), secrets}
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

// The query parameters of a database URL that hold secrets: libpq's
// password, and the password of an encrypted client key.
var secretParams = []string{"password", "sslpassword"}

// passwords returns the secrets in u, as given and as they appear in it
// (escaped).
func passwords(u *url.URL) []string {
	var out []string
	add := func(s string) {
		if s != "" {
			out = append(out, s, url.QueryEscape(s), url.PathEscape(s))
		}
	}
	if p, ok := u.User.Password(); ok {
		add(p)
	}
	q := u.Query()
	for _, name := range secretParams {
		for _, v := range q[name] {
			add(v)
		}
	}
	return out
}

// usePasswordParameter moves a password parameter into u's user info,
// where pgdriver takes the password from (it would send the parameter to
// the server as a setting, which fails, and may be logged), unless the
// user info has a password already.
func usePasswordParameter(u *url.URL) {
	q := u.Query()
	if !q.Has("password") {
		return
	}
	p := q.Get("password")
	q.Del("password")
	u.RawQuery = q.Encode()
	if _, ok := u.User.Password(); !ok {
		u.User = url.UserPassword(u.User.Username(), p)
	}
}

// redacted returns u for messages: its password and secret parameters
// replaced by "xxxxx".
func redacted(u *url.URL) string {
	r := *u
	q := r.Query()
	for _, name := range secretParams {
		if q.Has(name) {
			q.Set(name, "xxxxx")
		}
	}
	r.RawQuery = q.Encode()
	return r.Redacted()
}

// scrub replaces every secret in s by "xxxxx".
func scrub(s string, secrets []string) string {
	for _, x := range secrets {
		s = strings.ReplaceAll(s, x, "xxxxx")
	}
	return s
}

// scrubbed is an error whose text is scrubbed of secrets; its chain (and
// so its domain code) is kept.
type scrubbed struct {
	err     error
	secrets []string
}

func (e scrubbed) Error() string { return scrub(e.err.Error(), e.secrets) }
func (e scrubbed) Unwrap() error { return e.err }
