package resolvers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// rateRequest is what one HTTP request learned of its budgets: the request
// budget's quota for the RateLimit-* headers, and how long to wait after a
// refused charge for Retry-After. charged tells the GraphQL layer that the
// request budget was already charged for this request's one operation;
// operations on a WebSocket are charged one by one instead.
type rateRequest struct {
	charged bool
	mu      sync.Mutex
	quota   domain.Quota
	retry   time.Duration
}

// rateRequestFrom returns the rate budget's answer for ctx's request, or
// nil if nothing charged it (no rate limiter).
func rateRequestFrom(ctx context.Context) *rateRequest {
	if er := edgeRequestFrom(ctx); er != nil && er.rated {
		return &er.rate
	}
	return nil
}

// refused records a refused charge, so the response says when to retry.
func (r *rateRequest) refused(err error) {
	var rerr *domain.RateLimitError
	if r == nil || !errors.As(err, &rerr) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retry = max(r.retry, rerr.RetryAfter)
}

// The RateLimit-* headers in canonical form, which net/http writes without
// converting them on every response.
var (
	headerRateLimitLimit     = http.CanonicalHeaderKey("RateLimit-Limit")
	headerRateLimitRemaining = http.CanonicalHeaderKey("RateLimit-Remaining")
	headerRateLimitReset     = http.CanonicalHeaderKey("RateLimit-Reset")
)

// setHeaders writes the RateLimit-* headers of the request budget (none if
// nothing was charged) and Retry-After after a refusal.
func (r *rateRequest) setHeaders(h http.Header, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if q := r.quota; q.Limit > 0 {
		h.Set(headerRateLimitLimit, strconv.Itoa(q.Limit))
		h.Set(headerRateLimitRemaining, strconv.Itoa(q.Remaining))
		h.Set(headerRateLimitReset, strconv.Itoa(secondsUntil(q.Reset, now)))
	}
	if r.retry > 0 {
		h.Set("Retry-After", strconv.Itoa(int(r.retry/time.Second)))
	}
}

func secondsUntil(t, now time.Time) int {
	d := t.Sub(now)
	if d <= 0 {
		return 0
	}
	return int((d + time.Second - 1) / time.Second)
}

// chargeOperation charges an operation that arrived on a long-lived
// connection (a WebSocket), which the HTTP middleware saw only once.
func chargeOperation(ctx context.Context, limits *domain.RateLimitService) error {
	if rr := rateRequestFrom(ctx); rr != nil && rr.charged {
		return nil
	}
	_, err := limits.ChargeRequest(ctx)
	return err
}
