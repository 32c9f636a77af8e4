package domain

import (
	"context"
	"net/netip"
)

// Caller is who is making a request: an API key, or the operator running the
// rdev CLI on the server itself.
type Caller struct {
	// Key is the authenticated key; nil for the operator.
	Key *APIKey
	// Operator is true for the local CLI, which holds every scope.
	Operator bool
	// Addr is the client's address as seen by the server (after trusted
	// proxies), for allow-lists and the audit log.
	Addr      netip.Addr
	UserAgent string
	RequestID string
	// secretHash is the hash of the secret the caller presented, so that a
	// connection is refused once a rotation retires that secret (see
	// APIKeyService.Guard).
	secretHash string
	// keyGen is the authentication cache's generation (see authCache)
	// before Key was looked up, so that Guard can tell whether Key changed
	// since.
	keyGen uint64
}

// Scopes returns what the caller may do.
func (c *Caller) Scopes() Scopes {
	switch {
	case c == nil:
		return nil
	case c.Operator:
		return Scopes{ScopeAdmin}
	case c.Key != nil:
		return c.Key.Scopes
	default:
		return nil
	}
}

// KeyID returns the caller's key ID, or "" for the operator or nobody.
func (c *Caller) KeyID() string {
	if c == nil || c.Key == nil {
		return ""
	}
	return c.Key.ID
}

// Actor names the caller in the audit log: its key ID, AuditActorCLI for
// the operator, or "" for nobody.
func (c *Caller) Actor() string {
	switch {
	case c == nil:
		return ""
	case c.Key != nil:
		return c.Key.ID
	case c.Operator:
		return AuditActorCLI
	}
	return ""
}

type callerKey struct{}

// NewContextWithCaller returns a context carrying c.
func NewContextWithCaller(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// NewOperatorContext returns a context for the server's own operator, as used
// by the rdev CLI against its database.
func NewOperatorContext(ctx context.Context) context.Context {
	return NewContextWithCaller(ctx, &Caller{Operator: true})
}

// CallerFromContext returns the caller in ctx, or nil.
func CallerFromContext(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}

// Authorize returns the caller in ctx if it holds scope. It returns
// EUNAUTHENTICATED without a caller and EFORBIDDEN without the scope.
func Authorize(ctx context.Context, scope Scope) (*Caller, error) {
	c := CallerFromContext(ctx)
	if c == nil || (c.Key == nil && !c.Operator) {
		return nil, Errorf(EUNAUTHENTICATED, "authentication required: send Authorization: Bearer <API key>")
	}
	if !c.Scopes().Has(scope) {
		return nil, Errorf(EFORBIDDEN, "this API key lacks the %q scope", scope)
	}
	return c, nil
}
