package resolvers

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/rdev-hq/rdev/domain"
)

// retryUnavailable is the retry hint of an UNAVAILABLE error, as Retry-After
// and extensions.retryAfterSeconds: what fails that way (the database
// restarting or failing over) is mostly back within seconds, and clients
// back off from there.
const retryUnavailable = time.Second

// retryHint is what one HTTP request learned of outages: whether its
// operation failed because something it needs is unavailable, so that the
// response says 503 and when to retry.
type retryHint struct {
	mu   sync.Mutex
	down bool
}

type retryHintKey struct{}

func retryHintFrom(ctx context.Context) *retryHint {
	h, _ := ctx.Value(retryHintKey{}).(*retryHint)
	return h
}

// unavailable records an UNAVAILABLE error at a path pathLen fields deep (0
// for the operation as a whole). An error below a mutation's root field
// came after the mutation took effect: retrying the request could make it
// twice, so that one leaves the status alone.
func (h *retryHint) unavailable(mutation bool, pathLen int) {
	if h == nil || mutation && pathLen > 1 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down = true
}

// serviceUnavailable reports whether the response should be a 503.
func (h *retryHint) serviceUnavailable() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.down
}

// noteUnavailable records err, if it is UNAVAILABLE, with the request's
// retry hint; path is where in the response it goes.
func noteUnavailable(ctx context.Context, err error, path ast.Path) {
	if domain.ErrorCode(err) != domain.EUNAVAILABLE {
		return
	}
	mutation := graphql.HasOperationContext(ctx) && graphql.GetOperationContext(ctx).Operation != nil &&
		graphql.GetOperationContext(ctx).Operation.Operation == ast.Mutation
	retryHintFrom(ctx).unavailable(mutation, len(path))
}

// withRetryHints answers a request whose operation failed because
// something it needs is unavailable (storage, mostly) with 503 and
// Retry-After rather than 200, so that HTTP clients and proxies retry it as
// they retry any outage. Streams (SSE) have begun with 200 before they can
// fail; their errors carry extensions.retryAfterSeconds instead. WebSocket
// upgrades pass untouched.
func withRetryHints(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		h := &retryHint{}
		ctx := context.WithValue(r.Context(), retryHintKey{}, h)
		next.ServeHTTP(&retryWriter{ResponseWriter: w, hint: h}, r.WithContext(ctx))
	})
}

// retryWriter turns the response's 200 into a 503 if the operation was
// found unavailable by the time the response starts.
type retryWriter struct {
	http.ResponseWriter
	hint    *retryHint
	started bool
}

// WriteHeader writes status, or 503 with Retry-After in place of a 200.
func (w *retryWriter) WriteHeader(status int) {
	if !w.started {
		w.started = true
		if status == http.StatusOK && w.hint.serviceUnavailable() {
			setRetryAfter(w.Header())
			status = http.StatusServiceUnavailable
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

// Write starts the response, as WriteHeader(200) would, if it has not.
func (w *retryWriter) Write(p []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Flush lets streaming transports (SSE) flush through the wrapper.
func (w *retryWriter) Flush() {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *retryWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func setRetryAfter(h http.Header) {
	h.Set("Retry-After", strconv.Itoa(int(retryUnavailable/time.Second)))
}
