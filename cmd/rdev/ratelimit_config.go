package main

import (
	"context"
	"fmt"
	"net/url"
	"time"

	libredis "github.com/redis/go-redis/v9"
	"github.com/ulule/limiter/v3"
	redisstore "github.com/ulule/limiter/v3/drivers/store/redis"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/ratelimit"
)

// rateLimitConfig is how `rdev serve` limits API keys.
type rateLimitConfig struct {
	RequestsPerSecond     int
	Burst                 int
	ExecutePerMinute      int
	AuthFailuresPerMinute int
	Store                 string
	RedisURL              string
}

func (c *rateLimitConfig) register(f *envFlags) {
	f.Int(&c.RequestsPerSecond, "rate-limit-rps", "RATE_LIMIT_RPS", 10, "requests per second per API key, unless the key has its own rateLimit (0: no limit)")
	f.Int(&c.Burst, "rate-limit-burst", "RATE_LIMIT_BURST", 20, "requests a key may send at once; the window is burst/rps seconds")
	f.Int(&c.ExecutePerMinute, "rate-limit-execute-per-minute", "RATE_LIMIT_EXECUTE_PER_MINUTE", 60, "executeCommand calls per minute per API key, each alias counted (0: no limit)")
	f.Int(&c.AuthFailuresPerMinute, "rate-limit-auth-failures-per-minute", "RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", 20, "failed authentications per minute from one client address before its attempts are refused (0: no limit)")
	f.String(&c.Store, "rate-limit-store", "RATE_LIMIT_STORE", "", "where budgets are kept: memory, postgres or redis (empty: postgres with DATABASE_URL, else memory)")
	f.String(&c.RedisURL, "redis-url", "REDIS_URL", "", "Redis URL for RATE_LIMIT_STORE=redis, e.g. redis://127.0.0.1:6379/0")
}

func (c *rateLimitConfig) limits() (domain.RateLimits, error) {
	l := domain.RateLimits{
		RequestsPerSecond: c.RequestsPerSecond, Burst: c.Burst,
		ExecutePerMinute: c.ExecutePerMinute, AuthFailuresPerMinute: c.AuthFailuresPerMinute,
	}
	if err := l.Validate(); err != nil {
		return l, fmt.Errorf("RATE_LIMIT_*: %s", domain.ErrorMessage(err))
	}
	return l, nil
}

// rateLimitStore is the opened store of keys' budgets.
type rateLimitStore struct {
	store limiter.Store
	kind  string
	// sweep deletes expired charges periodically; nil when the store
	// expires them itself.
	sweep func(context.Context) (int64, error)
	close func() error
}

// open opens the configured store. postgres needs DATABASE_URL; redis needs
// REDIS_URL and a Redis that answers.
func (c *rateLimitConfig) open(ctx context.Context, db *bunstore.Store, embedded bool) (*rateLimitStore, error) {
	kind := c.Store
	if kind == "" {
		kind = "postgres"
		if embedded {
			kind = "memory"
		}
	}
	switch kind {
	case "memory":
		return &rateLimitStore{store: ratelimit.NewMemoryStore(), kind: kind, close: func() error { return nil }}, nil
	case "postgres":
		if embedded {
			return nil, fmt.Errorf("RATE_LIMIT_STORE=postgres needs DATABASE_URL (the embedded SQLite database keeps no budgets)")
		}
		s := ratelimit.NewPostgresStore(db.DB())
		return &rateLimitStore{store: s, kind: kind, sweep: s.Sweep, close: func() error { return nil }}, nil
	case "redis":
		if c.RedisURL == "" {
			return nil, fmt.Errorf("RATE_LIMIT_STORE=redis needs REDIS_URL")
		}
		if _, err := url.Parse(c.RedisURL); err != nil {
			// url's error quotes the input, password and all.
			return nil, fmt.Errorf("REDIS_URL: not a valid URL such as redis://host:6379/0")
		}
		opt, err := libredis.ParseURL(c.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %v", err)
		}
		client := libredis.NewClient(opt)
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := client.Ping(ctx).Err(); err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("REDIS_URL: Redis at %s does not answer: %v", opt.Addr, err)
		}
		s, err := redisstore.NewStoreWithOptions(client, limiter.StoreOptions{Prefix: "rdev:ratelimit"})
		if err != nil {
			_ = client.Close()
			return nil, fmt.Errorf("REDIS_URL: %v", err)
		}
		return &rateLimitStore{store: s, kind: kind, close: client.Close}, nil
	}
	return nil, fmt.Errorf("RATE_LIMIT_STORE: %q is not memory, postgres or redis", kind)
}
