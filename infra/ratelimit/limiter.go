// Package ratelimit keeps rdev's rate-limit budgets in a
// github.com/ulule/limiter/v3 Store: exact sliding-window stores of its own,
// in memory (MemoryStore, one process) and on Postgres (PostgresStore, shared
// by every process on the database), or any other limiter.Store, such as
// ulule's Redis store (a fixed window). Limiter adapts a store to
// domain.RateLimiter.
package ratelimit

import (
	"context"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/rdev-hq/rdev/domain"
)

// Limiter implements domain.RateLimiter on a limiter.Store.
type Limiter struct {
	store limiter.Store
}

var _ domain.RateLimiter = (*Limiter)(nil)

// New returns a limiter on store.
func New(store limiter.Store) *Limiter { return &Limiter{store: store} }

// Take charges n units to b if b still holds them; n = 0 only reads. It
// returns EUNAVAILABLE, wrapping the cause, if the store fails.
func (l *Limiter) Take(ctx context.Context, b domain.Budget, n int) (domain.Quota, bool, error) {
	rate := limiter.Rate{Period: b.Window, Limit: int64(b.Limit)}
	var (
		c   limiter.Context
		err error
	)
	if n <= 0 {
		c, err = l.store.Peek(ctx, b.Key(), rate)
	} else {
		c, err = l.store.Increment(ctx, b.Key(), int64(n), rate)
	}
	if err != nil {
		if domain.ErrorCode(err) == domain.EINTERNAL {
			err = unavailable(err) // a store of ulule's, such as Redis
		}
		return domain.Quota{}, false, err
	}
	q := domain.Quota{Limit: int(c.Limit), Remaining: int(c.Remaining), Reset: time.Unix(c.Reset, 0)}
	return q, n > 0 && !c.Reached, nil
}
