package ratelimit

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/ulule/limiter/v3"
	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

// PostgresStore is an exact sliding-window limiter.Store on the
// rate_limiting table (see migrations/postgres): the same log of charges as
// MemoryStore, checked and charged in one SQL function call under an
// advisory lock on the key, so every rdev process on the database shares each
// budget exactly. The time is the database's, one clock for all processes.
type PostgresStore struct {
	db  bun.IDB
	now func() time.Time // nil: the database's clock
}

var _ limiter.Store = (*PostgresStore)(nil)

// NewPostgresStore returns the store on db, whose schema must be migrated.
func NewPostgresStore(db bun.IDB) *PostgresStore { return &PostgresStore{db: db} }

// NewPostgresStoreWithClock returns a store that charges at the times now
// gives instead of the database's clock, for tests that step through
// windows.
func NewPostgresStoreWithClock(db bun.IDB, now func() time.Time) *PostgresStore {
	return &PostgresStore{db: db, now: now}
}

// Increment takes count units from key if they fit in rate; Reached reports
// that they did not, and then nothing was taken. It returns EUNAVAILABLE,
// wrapping the cause, if the database fails.
func (s *PostgresStore) Increment(ctx context.Context, key string, count int64, rate limiter.Rate) (limiter.Context, error) {
	var at any // NULL: the database's clock
	if s.now != nil {
		at = s.now()
	}
	var (
		used        int64
		oldest, now sql.NullTime
		taken       bool
	)
	err := s.db.QueryRowContext(ctx, `SELECT out_used, out_oldest, out_taken, out_now FROM rate_limiting_take(?, ?, ?, ?, ?)`,
		key, max(count, 0), rate.Limit, rate.Period.Microseconds(), at).Scan(&used, &oldest, &taken, &now)
	if err != nil {
		return limiter.Context{}, unavailable(err)
	}
	reset := now.Time.Add(rate.Period)
	if oldest.Valid {
		reset = oldest.Time.Add(rate.Period)
	}
	return limiter.Context{
		Limit:     rate.Limit,
		Remaining: max(rate.Limit-used, 0),
		Reset:     ceilUnix(reset),
		Reached:   count > 0 && !taken,
	}, nil
}

// Get takes one unit from key, as Increment.
func (s *PostgresStore) Get(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	return s.Increment(ctx, key, 1, rate)
}

// Peek returns key's state without taking anything.
func (s *PostgresStore) Peek(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	return s.Increment(ctx, key, 0, rate)
}

// Reset forgets key's charges.
func (s *PostgresStore) Reset(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM rate_limiting WHERE key = ?`, key); err != nil {
		return limiter.Context{}, unavailable(err)
	}
	return limiter.Context{Limit: rate.Limit, Remaining: rate.Limit, Reset: ceilUnix(time.Now().Add(rate.Period))}, nil
}

// Sweep deletes the charges that have left their window, of keys not
// charged since (a key's own are deleted as it is charged). rdev serve runs
// it periodically.
func (s *PostgresStore) Sweep(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM rate_limiting WHERE expires_at < now()`)
	if err != nil {
		return 0, unavailable(err)
	}
	return res.RowsAffected()
}

// unavailable returns an EUNAVAILABLE error that also wraps cause, so
// clients see only that the limiter is unreachable while logs keep why.
func unavailable(cause error) error {
	return fmt.Errorf("%w: %w", domain.Errorf(domain.EUNAVAILABLE, "the rate limiter's store is unavailable"), cause)
}
