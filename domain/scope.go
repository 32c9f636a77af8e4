package domain

import (
	"slices"
	"strings"
)

// Scope names one permission an API key can hold.
type Scope string

// The scopes. ScopeAdmin implies every other scope.
const (
	ScopeProjectsRead  Scope = "projects:read"
	ScopeCommandsRead  Scope = "commands:read"
	ScopeCommandsWrite Scope = "commands:write"
	ScopeKeysRead      Scope = "keys:read"
	ScopeKeysWrite     Scope = "keys:write"
	ScopeWebhooksRead  Scope = "webhooks:read"
	ScopeWebhooksWrite Scope = "webhooks:write"
	ScopeAuditRead     Scope = "audit:read"
	ScopeSecretsWrite  Scope = "secrets:write"
	ScopeAdmin         Scope = "admin"
)

// AllScopes lists every scope in a stable order.
var AllScopes = []Scope{
	ScopeProjectsRead, ScopeCommandsRead, ScopeCommandsWrite,
	ScopeKeysRead, ScopeKeysWrite, ScopeWebhooksRead, ScopeWebhooksWrite,
	ScopeAuditRead, ScopeSecretsWrite, ScopeAdmin,
}

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return slices.Contains(AllScopes, s) }

// Scopes is a set of scopes, kept sorted and without duplicates.
type Scopes []Scope

func (ss Scopes) normalize() Scopes {
	out := slices.Clone(ss)
	slices.Sort(out)
	return slices.Compact(out)
}

// Has reports whether the set grants s, directly or through ScopeAdmin.
func (ss Scopes) Has(s Scope) bool {
	return slices.Contains(ss, s) || slices.Contains(ss, ScopeAdmin)
}

// Covers reports whether the set grants every scope of other.
func (ss Scopes) Covers(other Scopes) bool {
	for _, s := range other {
		if !ss.Has(s) {
			return false
		}
	}
	return true
}

// Strings returns the scope names.
func (ss Scopes) Strings() []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

func joinScopes(ss []Scope) string {
	return strings.Join(Scopes(ss).Strings(), ", ")
}
