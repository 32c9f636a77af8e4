package resolvers

import (
	"context"
	"net/http"
	"strconv"
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

// retryHintFrom returns the retry hint of ctx's request, or nil for an
// operation whose status no HTTP response carries (one on a WebSocket).
func retryHintFrom(ctx context.Context) *retryHint {
	if er := edgeRequestFrom(ctx); er != nil {
		return er.w.hint
	}
	return nil
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

func setRetryAfter(h http.Header) {
	h.Set("Retry-After", strconv.Itoa(int(retryUnavailable/time.Second)))
}
