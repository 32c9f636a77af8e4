package resolvers

import (
	"context"
	"errors"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/rdev-hq/rdev/domain"
)

// streamEnd keeps the error a subscription's stream ended with (see
// domain.WithStreamErrors) for the response that ends the subscription.
type streamEnd struct {
	mu  sync.Mutex
	err error
}

type streamEndKey struct{}

// withStreamEnd gives an operation a place for its stream's error.
func withStreamEnd(ctx context.Context) context.Context {
	return context.WithValue(ctx, streamEndKey{}, &streamEnd{})
}

// streamContext returns the context a subscription resolver opens its
// domain stream with, so that a stream that fails tells the subscription.
func streamContext(ctx context.Context) context.Context {
	e, _ := ctx.Value(streamEndKey{}).(*streamEnd)
	if e == nil {
		return ctx
	}
	return domain.WithStreamErrors(ctx, e.set)
}

func (e *streamEnd) set(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
	}
}

// take returns the error, once.
func (e *streamEnd) take() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	err := e.err
	e.err = nil
	return err
}

// endStreams ends a subscription whose stream failed, or whose key stopped
// authorizing it, with one last response: no data, and the error, presented as every error is (an
// outage is UNAVAILABLE with retryAfterSeconds). Without it the
// subscription would end as one that is over does, and a client would
// take the failure for the end. The WebSocket transport sends it as an
// error message; SSE as the last next event.
func endStreams(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	if r := next(ctx); r != nil {
		return r
	}
	e, _ := ctx.Value(streamEndKey{}).(*streamEnd)
	err := e.take()
	if err == nil {
		err = credentialEnded(ctx)
	}
	if err == nil {
		return nil
	}
	graphql.AddError(ctx, err)
	return &graphql.Response{Errors: graphql.GetErrors(ctx)}
}

// releasedAtEnd calls release once a subscription's responses end, so
// that its place among its key's subscriptions is free as soon as it is
// over (its context ending frees it too, when it is cut short).
func releasedAtEnd(responses graphql.ResponseHandler, release func()) graphql.ResponseHandler {
	return func(ctx context.Context) *graphql.Response {
		r := responses(ctx)
		if r == nil {
			release()
		}
		return r
	}
}

// credentialEnded returns why ctx ended if its key stopped authorizing it
// (see domain.APIKeyService.Guard), and nil otherwise.
func credentialEnded(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	if _, ok := errors.AsType[*domain.Error](context.Cause(ctx)); ok {
		return context.Cause(ctx)
	}
	return nil
}

// isSubscription reports whether ctx's operation is a subscription.
func isSubscription(ctx context.Context) bool {
	if !graphql.HasOperationContext(ctx) {
		return false
	}
	op := graphql.GetOperationContext(ctx).Operation
	return op != nil && op.Operation == ast.Subscription
}
