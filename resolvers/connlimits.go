package resolvers

import (
	"context"

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
