// Package resolvers is rdev's GraphQL edge: resolvers that decode input, call
// a domain service and map the result, plus the HTTP handler that serves them.
package resolvers

import "github.com/rdev-hq/rdev/domain"

// Resolver is the root resolver. It holds the domain services; it has no
// state of its own.
type Resolver struct {
	ProjectService *domain.ProjectService
	APIKeyService  *domain.APIKeyService
	CommandService *domain.CommandService
	AgentService   *domain.AgentService
	HealthService  *domain.HealthService
	AuditService   *domain.AuditService
	WebhookService *domain.WebhookService
	SecretService  *domain.SecretService
	NetworkService *domain.ProjectNetworkService
	// RateLimitService charges keys' budgets; nil limits nothing.
	RateLimitService *domain.RateLimitService
}
