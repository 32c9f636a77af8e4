package ratelimit_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/ratelimit"
)

func TestLimiter_Take(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l := ratelimit.New(ratelimit.NewMemoryStoreWithClock(func() time.Time { return now }))
	b := domain.Budget{Name: "requests", Subject: "k", Limit: 2, Window: 10 * time.Second}

	t.Run("OK", func(t *testing.T) {
		q, taken, err := l.Take(t.Context(), b, 1)
		if err != nil || !taken || q.Limit != 2 || q.Remaining != 1 || !q.Reset.Equal(now.Add(10*time.Second)) {
			t.Fatalf("Take = %+v, %t, %v", q, taken, err)
		}
	})
	t.Run("PeekTakesNothing", func(t *testing.T) {
		q, taken, err := l.Take(t.Context(), b, 0)
		if err != nil || taken || q.Remaining != 1 {
			t.Fatalf("Take(0) = %+v, %t, %v; want 1 remaining, nothing taken", q, taken, err)
		}
	})
	t.Run("Refused", func(t *testing.T) {
		if _, taken, _ := l.Take(t.Context(), b, 2); taken {
			t.Fatal("2 taken with 1 left")
		}
		if _, taken, _ := l.Take(t.Context(), b, 1); !taken {
			t.Fatal("the last 1 refused")
		}
	})
	// Budgets of the same name and another subject, or another name, are
	// apart.
	t.Run("BudgetsApart", func(t *testing.T) {
		for _, other := range []domain.Budget{{Name: "requests", Subject: "k2", Limit: 2, Window: time.Second}, {Name: "execute", Subject: "k", Limit: 2, Window: time.Second}} {
			if _, taken, _ := l.Take(t.Context(), other, 2); !taken {
				t.Errorf("%+v refused", other)
			}
		}
	})
	t.Run("ErrUnavailable", func(t *testing.T) {
		_, _, err := ratelimit.New(failingStore{}).Take(t.Context(), b, 1)
		if domain.ErrorCode(err) != domain.EUNAVAILABLE || !errors.Is(err, errBroken) {
			t.Errorf("a failing store: %v, want UNAVAILABLE wrapping the cause", err)
		}
	})
}

var errBroken = errors.New("connection refused")

// failingStore is a limiter.Store whose every call fails, as an unreachable
// Redis does.
type failingStore struct{}

func (failingStore) Get(context.Context, string, limiter.Rate) (limiter.Context, error) {
	return limiter.Context{}, errBroken
}

func (failingStore) Peek(context.Context, string, limiter.Rate) (limiter.Context, error) {
	return limiter.Context{}, errBroken
}

func (failingStore) Reset(context.Context, string, limiter.Rate) (limiter.Context, error) {
	return limiter.Context{}, errBroken
}

func (failingStore) Increment(context.Context, string, int64, limiter.Rate) (limiter.Context, error) {
	return limiter.Context{}, errBroken
}
