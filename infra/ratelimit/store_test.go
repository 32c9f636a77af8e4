package ratelimit_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	libredis "github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	redisstore "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/postgres"
	"github.com/rdev-hq/rdev/infra/ratelimit"
	"github.com/rdev-hq/rdev/internal/testenv"
	"github.com/rdev-hq/rdev/migrations"
)

// The contract every store rdev can be configured with keeps, on the wall
// clock: ulule's Redis store (a fixed window) as much as ours.
func TestStore(t *testing.T) {
	t.Run("Memory", func(t *testing.T) {
		testStore(t, func(*testing.T) limiter.Store { return ratelimit.NewMemoryStore() })
	})
	t.Run("Postgres", func(t *testing.T) {
		testStore(t, func(t *testing.T) limiter.Store { return ratelimit.NewPostgresStore(mustOpenPostgres(t).DB()) })
	})
	t.Run("Redis", func(t *testing.T) {
		testStore(t, mustOpenRedis)
	})
}

func testStore(t *testing.T, open func(*testing.T) limiter.Store) {
	rate := limiter.Rate{Period: time.Minute, Limit: 5}

	t.Run("IncrementCounts", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		for i := range rate.Limit {
			c := mustIncrement(t, s, "k", 1, rate)
			if c.Reached || c.Limit != rate.Limit || c.Remaining != rate.Limit-i-1 {
				t.Fatalf("increment %d: %+v, want remaining %d, not reached", i+1, c, rate.Limit-i-1)
			}
			if now := time.Now().Unix(); c.Reset < now || c.Reset > now+61 {
				t.Errorf("increment %d: reset %d is not within the minute from %d", i+1, c.Reset, now)
			}
		}
		if c := mustIncrement(t, s, "k", 1, rate); !c.Reached || c.Remaining != 0 {
			t.Errorf("increment past the limit: %+v, want reached with none remaining", c)
		}
		c, err := s.Peek(ctx, "k", rate)
		if err != nil || c.Remaining != 0 {
			t.Errorf("Peek after the limit = %+v, %v; want none remaining", c, err)
		}
	})

	t.Run("IncrementMany", func(t *testing.T) {
		s := open(t)
		if c := mustIncrement(t, s, "k", 4, rate); c.Reached || c.Remaining != 1 {
			t.Fatalf("increment by 4 of 5: %+v", c)
		}
		if c := mustIncrement(t, s, "k", 1, rate); c.Reached || c.Remaining != 0 {
			t.Fatalf("increment to the limit: %+v", c)
		}
	})

	t.Run("PeekTakesNothing", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustIncrement(t, s, "k", 2, rate)
		for range 3 {
			c, err := s.Peek(ctx, "k", rate)
			if err != nil || c.Reached || c.Remaining != 3 {
				t.Fatalf("Peek = %+v, %v; want 3 remaining", c, err)
			}
		}
	})

	t.Run("GetTakesOne", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		c, err := s.Get(ctx, "k", rate)
		if err != nil || c.Remaining != rate.Limit-1 {
			t.Fatalf("Get = %+v, %v; want %d remaining", c, err, rate.Limit-1)
		}
	})

	t.Run("ResetForgets", func(t *testing.T) {
		s, ctx := open(t), t.Context()
		mustIncrement(t, s, "k", rate.Limit, rate)
		if _, err := s.Reset(ctx, "k", rate); err != nil {
			t.Fatal(err)
		}
		if c := mustIncrement(t, s, "k", 1, rate); c.Reached || c.Remaining != rate.Limit-1 {
			t.Errorf("after Reset: %+v, want %d remaining", c, rate.Limit-1)
		}
	})

	t.Run("KeysAreApart", func(t *testing.T) {
		s := open(t)
		mustIncrement(t, s, "a", rate.Limit, rate)
		if c := mustIncrement(t, s, "b", 1, rate); c.Reached || c.Remaining != rate.Limit-1 {
			t.Errorf("another key: %+v, want %d remaining", c, rate.Limit-1)
		}
	})

	t.Run("WindowEnds", func(t *testing.T) {
		s := open(t)
		short := limiter.Rate{Period: 300 * time.Millisecond, Limit: 2}
		mustIncrement(t, s, "k", 2, short)
		if c := mustIncrement(t, s, "k", 1, short); !c.Reached {
			t.Fatalf("past the limit: %+v, want reached", c)
		}
		time.Sleep(400 * time.Millisecond)
		if c := mustIncrement(t, s, "k", 1, short); c.Reached {
			t.Errorf("after the window: %+v, want room", c)
		}
	})

	// Concurrent charges on one key are counted exactly: the check and the
	// increment are one step.
	t.Run("ConcurrentExact", func(t *testing.T) {
		s := open(t)
		const n, limit = 40, 15
		r := limiter.Rate{Period: time.Minute, Limit: limit}
		var ok atomic.Int64
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				c, err := s.Increment(context.Background(), "k", 1, r)
				if err != nil {
					t.Error(err)
					return
				}
				if !c.Reached {
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if got := ok.Load(); got != limit {
			t.Errorf("%d of %d concurrent increments fit a limit of %d", got, n, limit)
		}
	})
}

func mustIncrement(t *testing.T, s limiter.Store, key string, n int64, rate limiter.Rate) limiter.Context {
	t.Helper()
	c, err := s.Increment(t.Context(), key, n, rate)
	if err != nil {
		t.Fatalf("Increment(%q, %d): %v", key, n, err)
	}
	return c
}

// mustOpenPostgres returns a migrated store in a schema of its own.
func mustOpenPostgres(tb testing.TB) *bunstore.Store {
	tb.Helper()
	dsn, _ := testenv.PostgresSchema(tb)
	s, err := postgres.Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatalf("postgres.Open: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(tb.Context(), migrations.Postgres()); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return s
}

// redisURLEnv names the test Redis; it defaults to 127.0.0.1:6379.
const redisURLEnv = "RDEV_TEST_REDIS_URL"

// mustOpenRedis returns ulule's Redis store under a key prefix of the test's
// own, so parallel runs never share keys.
func mustOpenRedis(t *testing.T) limiter.Store {
	t.Helper()
	url := "redis://127.0.0.1:6379/0"
	if u := os.Getenv(redisURLEnv); u != "" {
		url = u
	}
	opt, err := libredis.ParseURL(url)
	if err != nil {
		t.Fatalf("%s: %v", redisURLEnv, err)
	}
	client := libredis.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	testenv.RequireService(t, "Redis", client.Ping(ctx).Err())
	s, err := redisstore.NewStoreWithOptions(client, limiter.StoreOptions{Prefix: "rdev_test_" + strings.ToLower(rand.Text()[:12])})
	if err != nil {
		t.Fatalf("redis store: %v", err)
	}
	return s
}
