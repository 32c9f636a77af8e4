package bunstore

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

// apiKeyRow is a row of api_keys. Bun tags live here, not on domain.APIKey.
type apiKeyRow struct {
	bun.BaseModel `bun:"table:api_keys"`

	ID                      string     `bun:"id,pk"`
	Name                    string     `bun:"name"`
	Scopes                  []string   `bun:"scopes"` // a JSON array
	SecretHash              string     `bun:"secret_hash"`
	PreviousSecretHash      string     `bun:"previous_secret_hash"`
	PreviousSecretExpiresAt *time.Time `bun:"previous_secret_expires_at"`
	RateLimit               int        `bun:"rate_limit"`
	CreatedBy               string     `bun:"created_by,nullzero"`
	CreatedAt               time.Time  `bun:"created_at"`
	ExpiresAt               *time.Time `bun:"expires_at"`
	RevokedAt               *time.Time `bun:"revoked_at"`
	LastUsedAt              *time.Time `bun:"last_used_at"`
	Version                 int64      `bun:"version"`
	ProjectNames            []string   `bun:"project_names"`     // a JSON array
	ProjectSelectors        []string   `bun:"project_selectors"` // a JSON array of canonical selectors

	AllowedIPs []*allowedIPRow `bun:"rel:has-many,join:id=key_id"`
}

// allowedIPRow is one of a key's allowed client networks.
type allowedIPRow struct {
	bun.BaseModel `bun:"table:allowed_ips"`

	KeyID    string `bun:"key_id,pk"`
	Position int    `bun:"position,pk"`
	CIDR     string `bun:"cidr"`
}

// newAPIKeyRow converts k for storage. Times are stored in UTC with
// microsecond precision, the finest both dialects keep.
func newAPIKeyRow(k *domain.APIKey) *apiKeyRow {
	r := &apiKeyRow{
		ID:                      k.ID,
		Name:                    k.Name,
		Scopes:                  k.Scopes.Strings(), // never nil: the column is NOT NULL
		SecretHash:              k.SecretHash,
		PreviousSecretHash:      k.PreviousSecretHash,
		PreviousSecretExpiresAt: storedTimePtr(k.PreviousSecretExpiresAt),
		RateLimit:               k.RateLimit,
		CreatedBy:               k.CreatedBy,
		CreatedAt:               storedTime(k.CreatedAt),
		ExpiresAt:               storedTimePtr(k.ExpiresAt),
		RevokedAt:               storedTimePtr(k.RevokedAt),
		LastUsedAt:              storedTimePtr(k.LastUsedAt),
		Version:                 k.Version,
	}
	r.ProjectNames, r.ProjectSelectors = projectScopeColumns(k.Projects)
	for i, p := range k.AllowedCIDRs {
		r.AllowedIPs = append(r.AllowedIPs, &allowedIPRow{KeyID: k.ID, Position: i, CIDR: p.String()})
	}
	return r
}

// apiKey converts a stored row back. Empty lists come back nil.
func (r *apiKeyRow) apiKey() (*domain.APIKey, error) {
	k := &domain.APIKey{
		ID:                      r.ID,
		Name:                    r.Name,
		SecretHash:              r.SecretHash,
		PreviousSecretHash:      r.PreviousSecretHash,
		PreviousSecretExpiresAt: storedTimePtr(r.PreviousSecretExpiresAt),
		RateLimit:               r.RateLimit,
		CreatedBy:               r.CreatedBy,
		CreatedAt:               storedTime(r.CreatedAt),
		ExpiresAt:               storedTimePtr(r.ExpiresAt),
		RevokedAt:               storedTimePtr(r.RevokedAt),
		LastUsedAt:              storedTimePtr(r.LastUsedAt),
		Version:                 r.Version,
	}
	for _, s := range r.Scopes {
		k.Scopes = append(k.Scopes, domain.Scope(s))
	}
	projects, err := projectScopeOf(r.ProjectNames, r.ProjectSelectors)
	if err != nil {
		return nil, fmt.Errorf("API key %s: %w", r.ID, err)
	}
	k.Projects = projects
	ips := slices.SortedFunc(slices.Values(r.AllowedIPs), func(a, b *allowedIPRow) int {
		return cmp.Compare(a.Position, b.Position)
	})
	for _, ip := range ips {
		p, err := netip.ParsePrefix(ip.CIDR)
		if err != nil {
			return nil, fmt.Errorf("API key %s: allowed_ips[%d]: %w", r.ID, ip.Position, err)
		}
		k.AllowedCIDRs = append(k.AllowedCIDRs, p)
	}
	return k, nil
}

func storedTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

func storedTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := storedTime(*t)
	return &u
}

// projectScopeColumns returns a project scope's columns, never nil (they are
// NOT NULL).
func projectScopeColumns(s domain.ProjectScope) (names, selectors []string) {
	return append([]string{}, s.Names...), append([]string{}, s.SelectorStrings()...)
}

// projectScopeOf reads a project scope back from its columns; both empty is
// the unrestricted scope.
func projectScopeOf(names, selectors []string) (domain.ProjectScope, error) {
	s, err := domain.NewProjectScope(names, selectors)
	if err != nil {
		return domain.ProjectScope{}, fmt.Errorf("stored project scope: %w", err)
	}
	return s, nil
}
