package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph"
)

// directives returns the schema's access-control directives. They check at
// the edge what the domain services check again, so a field without a
// directive is caught by the schema test rather than by luck.
func directives() graph.DirectiveRoot {
	return graph.DirectiveRoot{
		HasScope: func(ctx context.Context, _ any, next graphql.Resolver, scope domain.Scope) (any, error) {
			if _, err := domain.Authorize(ctx, scope); err != nil {
				return nil, err
			}
			return next(ctx)
		},
		Authenticated: func(ctx context.Context, _ any, next graphql.Resolver) (any, error) {
			if c := domain.CallerFromContext(ctx); c == nil || c.Key == nil {
				return nil, domain.Errorf(domain.EUNAUTHENTICATED, "authentication required: send Authorization: Bearer <API key>")
			}
			return next(ctx)
		},
	}
}
