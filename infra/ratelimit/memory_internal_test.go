package ratelimit

import (
	"testing"
	"time"

	"github.com/ulule/limiter/v3"
)

// Keys whose charges have all left their window are forgotten.
func TestMemoryStore_Sweep(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	s := NewMemoryStoreWithClock(func() time.Time { return now })
	rate := limiter.Rate{Period: time.Second, Limit: 3}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := s.Increment(t.Context(), k, 1, rate); err != nil {
			t.Fatal(err)
		}
	}
	now = now.Add(sweepEvery)
	if _, err := s.Increment(t.Context(), "d", 1, rate); err != nil {
		t.Fatal(err)
	}
	if n := s.len(); n != 1 {
		t.Errorf("%d keys held after a sweep, want 1 (the one charged since)", n)
	}
}
