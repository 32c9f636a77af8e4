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
	"time"

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

	// turns, when set (see TakeTurns), has room for one transaction: the
	// one holding the database's write lock in this process.
	turns    chan struct{}
	turnWait time.Duration
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

// TakeTurns makes the store's transactions begin one at a time, in the order
// they asked, each waiting up to wait for its turn before it begins anyway
// (and waits as the database makes it). It is for SQLite, where every
// transaction takes the one write lock as it begins (BEGIN IMMEDIATE) and a
// transaction that finds it taken polls for it: under a steady stream of
// writers, an unlucky one could find it taken at every poll until the busy
// timeout failed it. Call it before the store is used.
func (s *Store) TakeTurns(wait time.Duration) {
	s.turns, s.turnWait = make(chan struct{}, 1), wait
}

// takeTurn waits for the calling transaction's turn (see TakeTurns) and
// returns the function that ends it. Past turnWait it returns without a
// turn, and a no-op: a transaction begun inside another's callback, or one
// that never ends, then fails as SQLite's busy timeout fails it, rather than
// waiting for ever.
func (s *Store) takeTurn(ctx context.Context) (end func(), err error) {
	end = func() { <-s.turns }
	select {
	case s.turns <- struct{}{}:
		return end, nil
	default:
	}
	wait := time.NewTimer(s.turnWait)
	defer wait.Stop()
	select {
	case s.turns <- struct{}{}:
		return end, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("begin transaction: %w", ctx.Err())
	case <-wait.C:
		return func() {}, nil
	}
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

// inTx runs fn in a transaction and returns fn's error unchanged, so domain
// errors from callbacks pass through; failures to begin or commit are wrapped.
// The transaction is rolled back if fn fails or panics.
func (s *Store) inTx(ctx context.Context, fn func(ctx context.Context, tx bun.Tx) error) error {
	if s.turns != nil {
		end, err := s.takeTurn(ctx)
		if err != nil {
			return err
		}
		defer end()
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{})
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = tx.Rollback() // the error that matters is already being returned.
		}
	}()
	if err := fn(ctx, tx); err != nil {
		return err
	}
	committed = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
