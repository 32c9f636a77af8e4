package resolvers

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
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

type rateRequestKey struct{}

func rateRequestFrom(ctx context.Context) *rateRequest {
	r, _ := ctx.Value(rateRequestKey{}).(*rateRequest)
	return r
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

// rateLimit charges every HTTP request to its key's request budget, refuses
// one over it with 429 before any GraphQL runs, and gives every response the
// RateLimit-* headers. It runs after authentication: requests without a key
// are not charged (their fields refuse them).
func rateLimit(next http.Handler, limits *domain.RateLimitService) http.Handler {
	if limits == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upgrade := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
		rr := &rateRequest{charged: !upgrade}
		q, err := limits.ChargeRequest(r.Context())
		rr.quota = q
		if err != nil {
			rr.refused(err)
			rr.setHeaders(w.Header(), time.Now())
			writeError(w, 0, err)
			return
		}
		ctx := context.WithValue(r.Context(), rateRequestKey{}, rr)
		if upgrade {
			// The connection's operations are charged as they start; the
			// upgrade response is the only one with headers.
			rr.setHeaders(w.Header(), time.Now())
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		next.ServeHTTP(&rateWriter{ResponseWriter: w, rr: rr}, r.WithContext(ctx))
	})
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

// rateWriter sets the rate-limit headers as the response starts, after the
// resolvers, whose refused charges (executeCommand's budget) add
// Retry-After.
type rateWriter struct {
	http.ResponseWriter
	rr   *rateRequest
	once sync.Once
}

func (w *rateWriter) start() {
	w.once.Do(func() { w.rr.setHeaders(w.Header(), time.Now()) })
}

// WriteHeader sets the rate-limit headers, then writes the status.
func (w *rateWriter) WriteHeader(status int) {
	w.start()
	w.ResponseWriter.WriteHeader(status)
}

// Write sets the rate-limit headers if the status is not written yet.
func (w *rateWriter) Write(p []byte) (int, error) {
	w.start()
	return w.ResponseWriter.Write(p)
}

// Flush lets streaming transports (SSE) flush through the wrapper.
func (w *rateWriter) Flush() {
	w.start()
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *rateWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
