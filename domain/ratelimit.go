package domain

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// Budget is one sliding-window allowance: at most Limit units in any span of
// Window. Name and Subject identify it in the store ("requests" and a key ID,
// "auth_failures" and an address).
type Budget struct {
	Name    string
	Subject string
	Limit   int
	Window  time.Duration
}

// Key returns the budget's name in a store.
func (b Budget) Key() string { return b.Name + ":" + b.Subject }

// Quota is the state of a budget after a charge.
type Quota struct {
	Limit     int
	Remaining int
	// Reset is when the budget next grows: when its oldest charge leaves the
	// window.
	Reset time.Time
}

// RateLimiter keeps budgets. infra/ratelimit implements it.
type RateLimiter interface {
	// Take charges n units to b if b still holds them and reports whether it
	// did, with the budget's quota. n = 0 only reads the quota.
	Take(ctx context.Context, b Budget, n int) (q Quota, taken bool, err error)
}

// RateLimitError is the ERATELIMITED error of a refused charge. It unwraps to
// a *Error, so ErrorCode and ErrorMessage see it as any other.
type RateLimitError struct {
	Quota      Quota
	RetryAfter time.Duration
	err        *Error
}

// NewRateLimitError returns the error for a charge to q refused at now.
func NewRateLimitError(what string, q Quota, now time.Time) *RateLimitError {
	retry := max(q.Reset.Sub(now), 0)
	// Whole seconds, rounded up: a client waiting that long finds room.
	retry = (retry + time.Second - 1).Truncate(time.Second)
	retry = max(retry, time.Second)
	return &RateLimitError{
		Quota:      q,
		RetryAfter: retry,
		err:        Errorf(ERATELIMITED, "rate limit exceeded: %s; retry in %d s", what, int(retry/time.Second)),
	}
}

// Error implements the error interface.
func (e *RateLimitError) Error() string { return e.err.Error() }

// Unwrap returns the *Error with code ERATELIMITED.
func (e *RateLimitError) Unwrap() error { return e.err }

// RateLimits is the rate-limiting policy. A zero rate turns its limit off.
type RateLimits struct {
	// RequestsPerSecond is a key's request rate, unless the key has its own
	// (APIKey.RateLimit).
	RequestsPerSecond int
	// Burst is how many requests a key may send at once. The request window
	// is Burst/RequestsPerSecond seconds, for every key: a key with its own
	// rate r gets r × window requests in it.
	Burst int
	// ExecutePerMinute is a key's budget of executeCommand calls.
	ExecutePerMinute int
	// AuthFailuresPerMinute is how many failed authentications one client
	// address may make before its attempts are refused unchecked.
	AuthFailuresPerMinute int
}

// Validate returns EINVALID for negative rates or a burst without a rate.
func (l RateLimits) Validate() error {
	switch {
	case l.RequestsPerSecond < 0 || l.Burst < 0 || l.ExecutePerMinute < 0 || l.AuthFailuresPerMinute < 0:
		return Errorf(EINVALID, "rate limits must not be negative")
	case l.RequestsPerSecond > 0 && l.Burst < 1:
		return Errorf(EINVALID, "the burst must be at least 1 when requests are limited")
	}
	return nil
}

// RequestWindow returns the window of the request budget.
func (l RateLimits) RequestWindow() time.Duration {
	if l.RequestsPerSecond <= 0 {
		return 0
	}
	return time.Duration(l.Burst) * time.Second / time.Duration(l.RequestsPerSecond)
}

// requests returns k's request budget, and false if requests are unlimited.
func (l RateLimits) requests(k *APIKey) (Budget, bool) {
	if l.RequestsPerSecond <= 0 {
		return Budget{}, false
	}
	limit := l.Burst
	if k.RateLimit > 0 {
		limit = max(k.RateLimit*l.Burst/l.RequestsPerSecond, 1)
	}
	return Budget{Name: "requests", Subject: k.ID, Limit: limit, Window: l.RequestWindow()}, true
}

// RateLimitService charges callers' budgets: each API key has a request
// budget and a costlier executeCommand budget, kept in a store that all rdev
// processes share; failed authentications are counted per client address in
// memory. A nil *RateLimitService limits nothing.
type RateLimitService struct {
	keys     RateLimiter
	failures RateLimiter
	limits   RateLimits
	now      func() time.Time
}

// NewRateLimitService returns the service. keys keeps the API keys' budgets,
// failures the per-address count of failed authentications.
func NewRateLimitService(keys, failures RateLimiter, limits RateLimits) *RateLimitService {
	return &RateLimitService{keys: keys, failures: failures, limits: limits, now: time.Now}
}

// ChargeRequest charges one request to the budget of the caller's key. It
// returns the quota (zero when nothing was charged: no key, the operator,
// requests unlimited, or a nil service) and a *RateLimitError (ERATELIMITED)
// when the budget is spent.
func (s *RateLimitService) ChargeRequest(ctx context.Context) (Quota, error) {
	c := CallerFromContext(ctx)
	if s == nil || c == nil || c.Key == nil {
		return Quota{}, nil
	}
	b, ok := s.limits.requests(c.Key)
	if !ok {
		return Quota{}, nil
	}
	return s.take(ctx, s.keys, b, 1, func() string { return fmt.Sprintf("%d requests per %s for this API key", b.Limit, b.Window) })
}

// ChargeExecute charges n executeCommand calls to the caller's key. It
// returns a *RateLimitError (ERATELIMITED) when the budget does not hold
// them; nothing is charged then. A nil service charges nothing.
func (s *RateLimitService) ChargeExecute(ctx context.Context, n int) (Quota, error) {
	c := CallerFromContext(ctx)
	if s == nil || c == nil || c.Key == nil || s.limits.ExecutePerMinute <= 0 {
		return Quota{}, nil
	}
	b := Budget{Name: "execute", Subject: c.Key.ID, Limit: s.limits.ExecutePerMinute, Window: time.Minute}
	return s.take(ctx, s.keys, b, n, func() string {
		return fmt.Sprintf("%d executeCommand calls per minute for this API key", b.Limit)
	})
}

// CheckAuthFailures returns a *RateLimitError (ERATELIMITED) if addr has
// used up its failed authentications and the key presented, keyID ("" for
// a credential that names none), has failed too within the window, so the
// attempt is not even checked. A key that has not failed is still checked
// from an address over its budget: failures with other keys (another user
// behind the same address, say) never lock a valid key out.
func (s *RateLimitService) CheckAuthFailures(ctx context.Context, addr netip.Addr, keyID string) error {
	b, ok := s.authFailures(addr)
	if !ok {
		return nil
	}
	q, _, err := s.failures.Take(ctx, b, 0)
	if err != nil || q.Remaining > 0 {
		return err
	}
	if keyID != "" {
		kq, _, err := s.failures.Take(ctx, s.keyAuthFailures(keyID), 0)
		if err != nil {
			return err
		}
		if kq.Remaining >= kq.Limit {
			return nil // this key has not failed: a guess at it is not what spent the budget
		}
	}
	return NewRateLimitError(fmt.Sprintf("%d failed authentications per minute from this address", b.Limit), q, s.now())
}

// AuthFailed counts a failed authentication from addr, presenting keyID
// ("" for a credential that names no key).
func (s *RateLimitService) AuthFailed(ctx context.Context, addr netip.Addr, keyID string) error {
	b, ok := s.authFailures(addr)
	if !ok {
		return nil
	}
	if _, _, err := s.failures.Take(ctx, b, 1); err != nil {
		return err
	}
	if keyID == "" {
		return nil
	}
	_, _, err := s.failures.Take(ctx, s.keyAuthFailures(keyID), 1)
	return err
}

func (s *RateLimitService) authFailures(addr netip.Addr) (Budget, bool) {
	if s == nil || s.limits.AuthFailuresPerMinute <= 0 {
		return Budget{}, false
	}
	return Budget{Name: "auth_failures", Subject: addr.String(), Limit: s.limits.AuthFailuresPerMinute, Window: time.Minute}, true
}

// keyAuthFailures is the budget of failed authentications presenting one
// key ID, from any address.
func (s *RateLimitService) keyAuthFailures(keyID string) Budget {
	return Budget{Name: "auth_failures_key", Subject: keyID, Limit: s.limits.AuthFailuresPerMinute, Window: time.Minute}
}

// take charges n units to b through l. what describes the budget in the
// error of a refused charge; it is called only then, so a charge that fits
// formats nothing.
func (s *RateLimitService) take(ctx context.Context, l RateLimiter, b Budget, n int, what func() string) (Quota, error) {
	q, taken, err := l.Take(ctx, b, n)
	if err != nil {
		return Quota{}, err
	}
	if !taken {
		return q, NewRateLimitError(what(), q, s.now())
	}
	return q, nil
}
