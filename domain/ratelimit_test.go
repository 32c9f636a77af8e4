package domain

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

// budgetLog is a RateLimiter that records what it was asked and takes a
// charge while the budget's total stays within its limit.
type budgetLog struct {
	mu      sync.Mutex
	used    map[string]int
	budgets []Budget
	err     error
}

func (l *budgetLog) Take(_ context.Context, b Budget, n int) (Quota, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return Quota{}, false, l.err
	}
	if l.used == nil {
		l.used = map[string]int{}
	}
	l.budgets = append(l.budgets, b)
	taken := n > 0 && l.used[b.Key()]+n <= b.Limit
	if taken {
		l.used[b.Key()] += n
	}
	return Quota{Limit: b.Limit, Remaining: b.Limit - l.used[b.Key()], Reset: time.Unix(1_000_000+int64(b.Window/time.Second), 0)}, taken, nil
}

func newRateLimitEnv(limits RateLimits) (*RateLimitService, *budgetLog, *budgetLog) {
	keys, failures := &budgetLog{}, &budgetLog{}
	s := NewRateLimitService(keys, failures, limits)
	s.now = func() time.Time { return time.Unix(1_000_000, 0) }
	return s, keys, failures
}

func TestRateLimitService_ChargeRequest(t *testing.T) {
	limits := RateLimits{RequestsPerSecond: 10, Burst: 20, ExecutePerMinute: 3, AuthFailuresPerMinute: 2}

	t.Run("OK", func(t *testing.T) {
		s, keys, _ := newRateLimitEnv(limits)
		q, err := s.ChargeRequest(keyContext(t, &APIKey{ID: "k1"}))
		if err != nil || q.Limit != 20 || q.Remaining != 19 {
			t.Fatalf("ChargeRequest = %+v, %v; want 19 of 20 left", q, err)
		}
		want := Budget{Name: "requests", Subject: "k1", Limit: 20, Window: 2 * time.Second}
		if keys.budgets[0] != want {
			t.Errorf("budget %+v, want %+v", keys.budgets[0], want)
		}
	})

	// A key's own rate keeps the window: its budget is rate × window.
	t.Run("KeyRateLimit", func(t *testing.T) {
		s, keys, _ := newRateLimitEnv(limits)
		for _, tt := range []struct{ rate, limit int }{{1, 2}, {50, 100}, {3, 6}} {
			if _, err := s.ChargeRequest(keyContext(t, &APIKey{ID: "k", RateLimit: tt.rate})); err != nil {
				t.Fatal(err)
			}
			if b := keys.budgets[len(keys.budgets)-1]; b.Limit != tt.limit || b.Window != 2*time.Second {
				t.Errorf("rateLimit %d: budget %+v, want %d per 2s", tt.rate, b, tt.limit)
			}
		}
		// Rounded down, but never to nothing.
		s, keys, _ = newRateLimitEnv(RateLimits{RequestsPerSecond: 10, Burst: 5})
		if _, err := s.ChargeRequest(keyContext(t, &APIKey{ID: "k", RateLimit: 1})); err != nil {
			t.Fatal(err)
		}
		if b := keys.budgets[0]; b.Limit != 1 || b.Window != 500*time.Millisecond {
			t.Errorf("rateLimit 1 at burst 5 / 10 rps: budget %+v, want 1 per 500ms", b)
		}
	})

	t.Run("ErrRateLimited", func(t *testing.T) {
		s, _, _ := newRateLimitEnv(RateLimits{RequestsPerSecond: 1, Burst: 1})
		ctx := keyContext(t, &APIKey{ID: "k"})
		if _, err := s.ChargeRequest(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := s.ChargeRequest(ctx)
		wantCode(t, err, ERATELIMITED)
		var rerr *RateLimitError
		if !errors.As(err, &rerr) || rerr.RetryAfter != time.Second || rerr.Quota.Remaining != 0 {
			t.Errorf("error %#v, want a RateLimitError retrying after 1s", err)
		}
	})

	t.Run("NotCharged", func(t *testing.T) {
		s, keys, _ := newRateLimitEnv(limits)
		for name, ctx := range map[string]context.Context{
			"anonymous": NewContextWithCaller(t.Context(), &Caller{}),
			"no caller": t.Context(),
			"operator":  operatorContext(t),
		} {
			if q, err := s.ChargeRequest(ctx); err != nil || q != (Quota{}) {
				t.Errorf("%s: %+v, %v", name, q, err)
			}
		}
		if len(keys.budgets) != 0 {
			t.Errorf("charged %+v", keys.budgets)
		}
		unlimited, keys, _ := newRateLimitEnv(RateLimits{})
		if _, err := unlimited.ChargeRequest(keyContext(t, &APIKey{ID: "k"})); err != nil || len(keys.budgets) != 0 {
			t.Errorf("unlimited: %v, %+v", err, keys.budgets)
		}
		var none *RateLimitService
		if _, err := none.ChargeRequest(keyContext(t, &APIKey{ID: "k"})); err != nil {
			t.Errorf("nil service: %v", err)
		}
	})

	t.Run("ErrStore", func(t *testing.T) {
		s, keys, _ := newRateLimitEnv(limits)
		keys.err = Errorf(EUNAVAILABLE, "down")
		_, err := s.ChargeRequest(keyContext(t, &APIKey{ID: "k"}))
		wantCode(t, err, EUNAVAILABLE)
	})
}

func TestRateLimitService_ChargeExecute(t *testing.T) {
	s, keys, _ := newRateLimitEnv(RateLimits{ExecutePerMinute: 3})
	ctx := keyContext(t, &APIKey{ID: "k"})
	if _, err := s.ChargeExecute(ctx, 2); err != nil {
		t.Fatal(err)
	}
	_, err := s.ChargeExecute(ctx, 2)
	wantCode(t, err, ERATELIMITED)
	if _, err := s.ChargeExecute(ctx, 1); err != nil {
		t.Errorf("the last one after a refusal: %v", err)
	}
	if b := keys.budgets[0]; b != (Budget{Name: "execute", Subject: "k", Limit: 3, Window: time.Minute}) {
		t.Errorf("budget %+v", b)
	}
}

func TestRateLimitService_AuthFailures(t *testing.T) {
	s, keys, failures := newRateLimitEnv(RateLimits{AuthFailuresPerMinute: 2})
	addr, other := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	for range 2 {
		if err := s.CheckAuthFailures(t.Context(), addr, "guessed"); err != nil {
			t.Fatal(err)
		}
		if err := s.AuthFailed(t.Context(), addr, "guessed"); err != nil {
			t.Fatal(err)
		}
	}
	// Over the address's budget: the key being guessed and credentials
	// that name no key are refused unchecked; another key, which has not
	// failed, is still checked (a valid key is never locked out).
	wantCode(t, s.CheckAuthFailures(t.Context(), addr, "guessed"), ERATELIMITED)
	wantCode(t, s.CheckAuthFailures(t.Context(), addr, ""), ERATELIMITED)
	if err := s.CheckAuthFailures(t.Context(), addr, "valid"); err != nil {
		t.Errorf("a key that never failed, from the address over its budget: %v", err)
	}
	if err := s.CheckAuthFailures(t.Context(), other, "guessed"); err != nil {
		t.Errorf("another address: %v", err)
	}
	if len(keys.budgets) != 0 || failures.budgets[0].Subject != "192.0.2.1" {
		t.Errorf("keys' store asked %+v; failures' %+v", keys.budgets, failures.budgets)
	}
}

func TestNewRateLimitError(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, tt := range []struct {
		reset time.Time
		want  time.Duration
	}{
		{now.Add(1500 * time.Millisecond), 2 * time.Second},
		{now.Add(60 * time.Second), 60 * time.Second},
		{now, time.Second},
		{now.Add(-time.Hour), time.Second},
	} {
		e := NewRateLimitError("x", Quota{Reset: tt.reset}, now)
		if e.RetryAfter != tt.want || ErrorCode(e) != ERATELIMITED || ErrorMessage(e) == "" {
			t.Errorf("reset %s after now: RetryAfter %s, code %s; want %s", tt.reset.Sub(now), e.RetryAfter, ErrorCode(e), tt.want)
		}
	}
}

func TestRateLimits_Validate(t *testing.T) {
	for _, l := range []RateLimits{{RequestsPerSecond: -1, Burst: 1}, {RequestsPerSecond: 1}, {ExecutePerMinute: -1}, {AuthFailuresPerMinute: -2}} {
		wantCode(t, l.Validate(), EINVALID)
	}
	for _, l := range []RateLimits{{}, {RequestsPerSecond: 10, Burst: 20, ExecutePerMinute: 60}} {
		if err := l.Validate(); err != nil {
			t.Errorf("%+v: %v", l, err)
		}
	}
}
