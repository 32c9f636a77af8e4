package resolvers

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/rdev-hq/rdev/domain"
)

// WebsocketAdmit admits a WebSocket connection once it is initialised,
// with the context its connection_init made, and returns the function that
// frees its place when it ends. An error refuses it.
type WebsocketAdmit = func(ctx context.Context) (release func(), err error)

// admitSocket counts a WebSocket against limits by the caller its
// connection_init left in ctx: the key it presented, or its upgrade
// request's, or for neither its address.
func admitSocket(limits *domain.ConnLimits) WebsocketAdmit {
	return func(ctx context.Context) (func(), error) {
		return limits.Open(domain.CallerFromContext(ctx), domain.ConnSocket)
	}
}

// limitStreams counts every SSE request against limits for as long as it
// runs, and refuses one over its caller's cap with 429 and RATE_LIMITED
// before any GraphQL runs. It runs after authentication, which names the
// caller.
func limitStreams(next http.Handler, limits *domain.ConnLimits) http.Handler {
	if limits == nil {
		return next
	}
	sse := transport.SSE{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sse.Supports(r) {
			next.ServeHTTP(w, r)
			return
		}
		release, err := limits.Open(domain.CallerFromContext(r.Context()), domain.ConnStream)
		if err != nil {
			writeError(w, 0, err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}
