package ratelimit_test

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/rdev-hq/rdev/infra/ratelimit"
)

// clock is a test clock that only moves when told.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock {
	// A whole minute, so a fixed window of a minute or less would start here.
	return &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Our stores are exact sliding windows: at most Limit units in any span of
// Period, whatever fixed window edges the span crosses.
func TestSlidingWindow(t *testing.T) {
	t.Run("Memory", func(t *testing.T) {
		testSlidingWindow(t, func(_ *testing.T, c *clock) limiter.Store { return ratelimit.NewMemoryStoreWithClock(c.Now) })
	})
	t.Run("Postgres", func(t *testing.T) {
		testSlidingWindow(t, func(t *testing.T, c *clock) limiter.Store {
			return ratelimit.NewPostgresStoreWithClock(mustOpenPostgres(t).DB(), c.Now)
		})
	})
}

func testSlidingWindow(t *testing.T, open func(*testing.T, *clock) limiter.Store) {
	rate := limiter.Rate{Period: 10 * time.Second, Limit: 5}

	// L units just before a fixed window's edge and L more just after are 2L
	// within one span of Period: a fixed window lets them all through.
	t.Run("WindowEdge", func(t *testing.T) {
		c := newClock()
		s := open(t, c)
		t0 := c.Now()
		c.set(t0.Add(9900 * time.Millisecond))
		for i := range rate.Limit {
			if r := mustIncrement(t, s, "k", 1, rate); r.Reached {
				t.Fatalf("charge %d before the edge refused: %+v", i+1, r)
			}
		}
		for _, at := range []time.Duration{10100 * time.Millisecond, 15 * time.Second, 19899 * time.Millisecond} {
			c.set(t0.Add(at))
			if r := mustIncrement(t, s, "k", 1, rate); !r.Reached || r.Remaining != 0 {
				t.Errorf("charge at +%s, within %s of %d others: %+v, want refused", at, rate.Period, rate.Limit, r)
			}
		}
		// Charges made at t count in [t, t+Period).
		c.set(t0.Add(19900 * time.Millisecond))
		if r := mustIncrement(t, s, "k", 5, rate); r.Reached {
			t.Errorf("a full window later: %+v, want room for %d", r, rate.Limit)
		}
	})

	t.Run("OldestLeavesFirst", func(t *testing.T) {
		c := newClock()
		s := open(t, c)
		t0 := c.Now()
		mustIncrement(t, s, "k", 3, rate)
		c.set(t0.Add(4 * time.Second))
		if r := mustIncrement(t, s, "k", 2, rate); r.Reached || r.Remaining != 0 {
			t.Fatalf("filling up: %+v", r)
		}
		if r := mustIncrement(t, s, "k", 1, rate); !r.Reached || r.Reset != t0.Add(rate.Period).Unix() {
			t.Errorf("full: %+v, want refused with reset at %d (when the oldest charge leaves)", r, t0.Add(rate.Period).Unix())
		}
		c.set(t0.Add(rate.Period))
		r, err := s.Peek(t.Context(), "k", rate)
		if err != nil || r.Remaining != 3 {
			t.Errorf("after the first charge left: %+v, %v; want 3 remaining", r, err)
		}
		if r := mustIncrement(t, s, "k", 4, rate); !r.Reached {
			t.Errorf("4 more with 3 free: %+v, want refused", r)
		}
		if r := mustIncrement(t, s, "k", 3, rate); r.Reached {
			t.Errorf("3 more with 3 free: %+v, want taken", r)
		}
	})

	// A refused charge is not recorded: hammering a spent budget does not
	// put off its recovery.
	t.Run("RefusalsCostNothing", func(t *testing.T) {
		c := newClock()
		s := open(t, c)
		t0 := c.Now()
		mustIncrement(t, s, "k", rate.Limit, rate)
		for i := range 20 {
			c.set(t0.Add(time.Duration(i) * 400 * time.Millisecond))
			mustIncrement(t, s, "k", 1, rate)
		}
		c.set(t0.Add(rate.Period))
		if r := mustIncrement(t, s, "k", rate.Limit, rate); r.Reached {
			t.Errorf("after the window: %+v, want the whole budget back", r)
		}
	})

	// Random arrivals: every accepted charge has at most Limit-1 others in
	// the span of Period before it, and every refused one had Limit.
	t.Run("AnySpan", func(t *testing.T) {
		c := newClock()
		s := open(t, c)
		rng := rand.New(rand.NewPCG(1, 2))
		now := c.Now()
		var taken []time.Time
		for range 400 {
			now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
			c.set(now)
			r := mustIncrement(t, s, "k", 1, rate)
			in := 0
			for _, at := range taken {
				if now.Sub(at) < rate.Period {
					in++
				}
			}
			switch {
			case !r.Reached && in >= int(rate.Limit):
				t.Fatalf("at %s: accepted with %d already in the window", now.Format(time.StampMilli), in)
			case r.Reached && in < int(rate.Limit):
				t.Fatalf("at %s: refused with only %d in the window", now.Format(time.StampMilli), in)
			}
			if !r.Reached {
				taken = append(taken, now)
			}
		}
		if len(taken) < 100 {
			t.Errorf("only %d of 400 accepted: the test did not exercise the limit", len(taken))
		}
	})
}

// Sweep deletes the charges of keys not charged since their window ended,
// and only those.
func TestPostgresStore_Sweep(t *testing.T) {
	db := mustOpenPostgres(t).DB()
	c := &clock{now: time.Now().Add(-time.Hour)}
	old := ratelimit.NewPostgresStoreWithClock(db, c.Now)
	rate := limiter.Rate{Period: time.Minute, Limit: 10}
	mustIncrement(t, old, "stale-a", 2, rate)
	mustIncrement(t, old, "stale-b", 1, rate)
	mustIncrement(t, ratelimit.NewPostgresStore(db), "fresh", 3, rate)
	n, err := ratelimit.NewPostgresStore(db).Sweep(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("Sweep = %d, %v; want the 2 stale charges deleted", n, err)
	}
	var left int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM rate_limiting WHERE key = 'fresh'").Scan(&left); err != nil || left != 1 {
		t.Errorf("fresh charges left: %d, %v; want 1", left, err)
	}
}
