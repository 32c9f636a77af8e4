package resolvers

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph"
)

// directives returns the schema's access-control directives. They check at
// the edge what the domain services check again, so a field without a
// directive is caught by the schema test rather than by luck. A mutation
// refused here is recorded in audit's log (nil records nothing).
func directives(audit *domain.AuditService) graph.DirectiveRoot {
	return graph.DirectiveRoot{
		HasScope: func(ctx context.Context, _ any, next graphql.Resolver, scope domain.Scope) (any, error) {
			if _, err := domain.Authorize(ctx, scope); err != nil {
				if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Object == "Mutation" {
					return nil, audit.Refused(ctx, mutationAction(fc.Field.Name), "", err)
				}
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

// mutationActions names the audit action of each mutation.
var mutationActions = map[string]string{
	"createAPIKey":   domain.AuditKeyCreate,
	"revokeAPIKey":   domain.AuditKeyRevoke,
	"rotateAPIKey":   domain.AuditKeyRotate,
	"updateAPIKey":   domain.AuditKeyUpdate,
	"executeCommand": domain.AuditCommandExecute,
	"cancelCommand":  domain.AuditCommandCancel,

	"createWebhook":            domain.AuditWebhookCreate,
	"updateWebhook":            domain.AuditWebhookUpdate,
	"deleteWebhook":            domain.AuditWebhookDelete,
	"rotateWebhookSecret":      domain.AuditWebhookRotateSecret,
	"testWebhook":              domain.AuditWebhookTest,
	"redeliverWebhookDelivery": domain.AuditWebhookRedeliver,

	"setSecret":    domain.AuditSecretSet,
	"deleteSecret": domain.AuditSecretDelete,
}

// mutationAction returns the audit action of a mutation field; one missing
// from mutationActions is recorded under its field name.
func mutationAction(field string) string {
	if a, ok := mutationActions[field]; ok {
		return a
	}
	return "mutation." + field
}
