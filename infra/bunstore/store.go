// Package bunstore implements rdev's storage ports on a *bun.DB. The same code
// serves every dialect; infra/postgres and infra/sqlite open the database and
// hand it here. Errors are translated at this boundary: a missing row becomes
// domain.ENOTFOUND, a unique violation domain.ECONFLICT, an unreachable
// database domain.EUNAVAILABLE, and anything else is wrapped with %w.
package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"

	"github.com/rdev-hq/rdev/domain"
)

// Store is rdev's storage on one database.
type Store struct {
	db       *bun.DB
	finishes finishGroup
	tracer   domain.CommandTracer
	segments *segments // nil: output bytes are kept in their rows
	// projects is where the label selectors of project-scoped webhook
	// endpoints are matched; nil matches none (see ProjectsFrom).
	projects domain.ProjectRepository
	// auditKeys MAC the audit entries appended; nil: they are unkeyed.
	auditKeys *domain.AuditKeyring
	// webhookSealer seals webhook endpoints' signing secrets; nil: they
	// are written in clear (see SealWebhookSecretsWith).
	webhookSealer domain.SecretSealer
}

var _ domain.APIKeyRepository = (*Store)(nil)

// New returns a store over db. The store owns db from then on: Close closes it.
func New(db *bun.DB) *Store {
	return &Store{db: db, tracer: domain.NopCommandTracer{}}
}

// TraceWith makes the webhook messages queued from now on keep t's trace
// context of the change that queued them. Call it before the store is used.
func (s *Store) TraceWith(t domain.CommandTracer) {
	s.tracer = t
}

// ProjectsFrom makes the webhook messages queued from now on judge the
// label selectors of project-scoped endpoints on the labels repo has for
// the event's project when the event happens. Without it, such endpoints
// are sent only the events of projects they name. Call it before the store
// is used.
func (s *Store) ProjectsFrom(repo domain.ProjectRepository) {
	s.projects = repo
}

// StoreOutputIn makes the bytes of output chunks stored from now on go to
// append-only segment files in dir (created when first needed) rather than
// into the database, whose rows then say where they are; chunks stored
// before stay where they are, and are read from there. It is for SQLite,
// which would otherwise write output twice (to its WAL, then to the
// database): infra/sqlite calls it. Postgres keeps output in its rows. Call
// it before the store is used; Close closes the files.
func (s *Store) StoreOutputIn(dir string) {
	s.segments = newSegments(dir)
}

// WithQueryHook makes every query the store (and DB's callers) makes from
// now on go through h, such as a tracing hook. Call it before the store is
// used.
func (s *Store) WithQueryHook(h bun.QueryHook) {
	s.db = s.db.WithQueryHook(h)
}

func (s *Store) traceContext(ctx context.Context) domain.TraceContext {
	return s.tracer.TraceContext(ctx)
}

// DB returns the database, for adapters that need what only their dialect
// offers (such as Postgres LISTEN/NOTIFY). Prefer adding methods to Store.
func (s *Store) DB() *bun.DB {
	return s.db
}

// Ping checks that the database answers. It returns EUNAVAILABLE, wrapping
// the cause, if it does not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		if _, ok := errors.AsType[*domain.Error](err); ok {
			return err // translated already, by Connector
		}
		return unavailable(err)
	}
	return nil
}

// Close closes the database, and the output segments if there are any.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.segments != nil {
		err = errors.Join(err, s.segments.close())
	}
	return err
}

// unavailable returns an EUNAVAILABLE error that also wraps cause, so clients
// see only that the database is unreachable while logs keep the reason.
func unavailable(cause error) error {
	return fmt.Errorf("%w: %w", domain.Errorf(domain.EUNAVAILABLE, "the database is unavailable"), cause)
}

// isPostgres reports whether row locks (SELECT ... FOR UPDATE) are needed and
// available. SQLite has none; its write transactions are serialized instead.
func (s *Store) isPostgres() bool {
	return s.db.Dialect().Name() == dialect.PG
}

// inTx runs fn in a transaction and returns fn's error with the database's
// unavailability translated (translate), so domain errors from callbacks
// pass through; failures to begin or commit are wrapped. The transaction is
// rolled back if fn fails or panics.
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin transaction: %w", translate(err))
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback() // the error that matters is already being returned.
		}
	}()
	if err := fn(ctx, tx); err != nil {
		return translate(err)
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", translate(err))
	}
	return nil
}
