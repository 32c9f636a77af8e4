package domain

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// UpdateAPIKey is the input of APIKeyService.Update: what to change. A nil
// field stays as it is; an empty list given is a list of none.
type UpdateAPIKey struct {
	Name   *string
	Scopes []string
	// AllowedCIDRs given empty would mean any address, so it is refused
	// unless the key already has none.
	AllowedCIDRs []string
	// RateLimit 0 is the server default, which only a key already at the
	// default may keep.
	RateLimit *int
	ExpiresAt *time.Time
	// Projects and ProjectSelectors replace the key's project names and
	// selectors; the one left nil keeps its current value.
	Projects         []string
	ProjectSelectors []string
}

// empty reports whether in changes nothing.
func (in UpdateAPIKey) empty() bool {
	return in.Name == nil && in.Scopes == nil && in.AllowedCIDRs == nil && in.RateLimit == nil &&
		in.ExpiresAt == nil && in.Projects == nil && in.ProjectSelectors == nil
}

// keyUpdate is an UpdateAPIKey validated on its own, before the key is read.
type keyUpdate struct {
	in        UpdateAPIKey
	scopes    Scopes
	cidrs     []netip.Prefix
	names     ProjectScope // its Names, when in.Projects is given
	selectors ProjectScope // its Selectors, when in.ProjectSelectors is given
}

// Update renames a key and narrows its access: fewer scopes, fewer or
// smaller allowed CIDRs, fewer projects or stricter selectors, a lower rate
// limit, an earlier expiry. It never widens one (EFORBIDDEN, naming the
// field: a key never gains access through an update), and it refuses with
// ECONFLICT, naming them, when active keys created by this one would then
// reach further than it (see boundByCreator). Who may update a key is who
// may revoke it (see Revoke; EFORBIDDEN otherwise, ENOTFOUND for a key the
// caller may not see); a revoked or expired key returns ECONFLICT, bad
// input EINVALID. The change reaches cached keys and open connections of
// every process as revocation does.
func (s *APIKeyService) Update(ctx context.Context, id string, in UpdateAPIKey) (*APIKey, error) {
	entry := s.audit.entry(ctx, AuditKeyUpdate, Clip(id))
	k, err := s.update(ctx, id, in, entry)
	if err != nil {
		return nil, s.audit.refused(ctx, entry, err)
	}
	s.keysChanged(ctx, k.ID)
	return k, nil
}

func (s *APIKeyService) update(ctx context.Context, id string, in UpdateAPIKey, entry *AuditEntry) (*APIKey, error) {
	if _, err := Authorize(ctx, ScopeKeysWrite); err != nil {
		return nil, err
	}
	u, err := s.parseUpdate(in)
	if err != nil {
		return nil, err
	}
	var children []*APIKey
	if validID(id) {
		// Read before the key is locked: a key it creates meanwhile is
		// bounded by it as it was, as any key made by a key whose change
		// has not yet reached the creating request is.
		if children, err = s.repo.FindAPIKeys(ctx, APIKeyFilter{CreatedBy: id}); err != nil {
			return nil, err
		}
	}
	return s.changeKey(ctx, id, entry, func(k *APIKey) error {
		if st := k.Status(s.now()); st != APIKeyActive {
			return Errorf(ECONFLICT, "API key %s is %s and cannot be updated", k.ID, st)
		}
		before := keyDetails(k)
		if err := s.narrow(k, u); err != nil {
			return err
		}
		if err := s.childrenWithin(k, children); err != nil {
			return err
		}
		if entry != nil {
			entry.Details = keyChanges(before, keyDetails(k))
		}
		return nil
	})
}

// parseUpdate validates what in gives. It returns EINVALID naming the
// first bad field, or when in changes nothing.
func (s *APIKeyService) parseUpdate(in UpdateAPIKey) (keyUpdate, error) {
	u := keyUpdate{in: in}
	if in.empty() {
		return u, Errorf(EINVALID, "nothing to change: give a name, scopes, allowedCIDRs, rateLimit, expiresAt, projects or projectSelectors")
	}
	var err error
	if in.Name != nil {
		if err := validateKeyName(*in.Name); err != nil {
			return u, err
		}
	}
	if in.Scopes != nil {
		if u.scopes, err = ParseScopes(in.Scopes); err != nil {
			return u, err
		}
	}
	if in.AllowedCIDRs != nil {
		if u.cidrs, err = ParseCIDRs(in.AllowedCIDRs); err != nil {
			return u, err
		}
	}
	if in.RateLimit != nil {
		if err := validateKeyRateLimit(*in.RateLimit); err != nil {
			return u, err
		}
	}
	if err := validateExpiry(in.ExpiresAt, s.now()); err != nil {
		return u, err
	}
	if u.names, err = NewProjectScope(in.Projects, nil); err != nil {
		return u, err
	}
	if u.selectors, err = NewProjectScope(nil, in.ProjectSelectors); err != nil {
		return u, err
	}
	return u, nil
}

// narrow applies u to k, returning EFORBIDDEN, naming the field, for a
// change that would widen k.
func (s *APIKeyService) narrow(k *APIKey, u keyUpdate) error {
	const widen = "; make a new key to widen it"
	if u.in.Name != nil {
		k.Name = *u.in.Name
	}
	if u.in.Scopes != nil {
		if missing := slices.DeleteFunc(slices.Clone(u.scopes), k.Scopes.Has); len(missing) > 0 {
			return Errorf(EFORBIDDEN, "scopes: the key does not hold %s"+widen, joinScopes(missing))
		}
		k.Scopes = u.scopes
	}
	if u.in.AllowedCIDRs != nil {
		if outside, beyond := cidrsBeyond(u.cidrs, k.AllowedCIDRs); beyond && outside.IsValid() {
			return Errorf(EFORBIDDEN, "allowedCIDRs: %s is not within the key's allowed CIDRs (%s)"+widen, outside, joinPrefixes(k.AllowedCIDRs))
		} else if beyond {
			return Errorf(EFORBIDDEN, "allowedCIDRs: none would let the key be used from any address, not only %s"+widen, joinPrefixes(k.AllowedCIDRs))
		}
		k.AllowedCIDRs = u.cidrs
	}
	if u.in.RateLimit != nil {
		if rate := *u.in.RateLimit; !s.rateLimitWithin(rate, k) {
			return Errorf(EFORBIDDEN, "rateLimit: %d requests per second (0: the server default) is not within the key's %s"+widen, rate, s.rateLimitText(k))
		}
		k.RateLimit = *u.in.RateLimit
	}
	if at := utcMicros(u.in.ExpiresAt); at != nil {
		if !expiryWithin(at, k.ExpiresAt) {
			return Errorf(EFORBIDDEN, "expiresAt: %s is after %s, when the key expires"+widen, AuditTime(*at), AuditTime(*k.ExpiresAt))
		}
		k.ExpiresAt = at
	}
	if u.in.Projects != nil || u.in.ProjectSelectors != nil {
		scope := k.Projects
		if u.in.Projects != nil {
			scope.Names = u.names.Names
		}
		if u.in.ProjectSelectors != nil {
			scope.Selectors = u.selectors.Selectors
		}
		if scope.Within(k.Projects) != nil {
			return Errorf(EFORBIDDEN, "projects, projectSelectors: %s would reach projects the key's %s does not"+widen, scope, k.Projects)
		}
		k.Projects = scope
	}
	return nil
}

// childrenWithin returns ECONFLICT, naming them, unless every active key
// among children (keys k created) lies within k as boundByCreator would
// have required of it.
func (s *APIKeyService) childrenWithin(k *APIKey, children []*APIKey) error {
	now := s.now()
	var wider []string
	for _, c := range children {
		if c.Status(now) != APIKeyActive {
			continue
		}
		var fields []string
		if !k.Scopes.Covers(c.Scopes) {
			fields = append(fields, "scopes")
		}
		if _, beyond := cidrsBeyond(c.AllowedCIDRs, k.AllowedCIDRs); beyond {
			fields = append(fields, "allowedCIDRs")
		}
		if !s.rateLimitWithin(c.RateLimit, k) {
			fields = append(fields, "rateLimit")
		}
		if !expiryWithin(c.ExpiresAt, k.ExpiresAt) {
			fields = append(fields, "expiresAt")
		}
		if c.Projects.Within(k.Projects) != nil {
			fields = append(fields, "projects")
		}
		if len(fields) > 0 {
			wider = append(wider, c.ID+" ("+strings.Join(fields, ", ")+")")
		}
	}
	if len(wider) == 0 {
		return nil
	}
	return Errorf(ECONFLICT, "keys created by %s would reach further than it after this update: %s; narrow or revoke them first", k.ID, joinFirst(wider, 8))
}

// keyChanges describes an update in audit details: each field of
// keyDetails that changed with its new value ("" for none) and, under
// field+"Before", its old one, and "changed" listing those fields.
func keyChanges(before, after map[string]string) map[string]string {
	d := map[string]string{}
	var changed []string
	fields := slices.AppendSeq(slices.Collect(maps.Keys(before)), maps.Keys(after))
	slices.Sort(fields)
	for _, f := range slices.Compact(fields) {
		if before[f] != after[f] {
			changed = append(changed, f)
			d[f], d[f+"Before"] = after[f], before[f]
		}
	}
	d["changed"] = strings.Join(changed, ",")
	return d
}

// rateLimitText describes k's rate limit for a message.
func (s *APIKeyService) rateLimitText(k *APIKey) string {
	switch {
	case k.RateLimit > 0:
		return strconv.Itoa(k.RateLimit)
	case s.DefaultRateLimit > 0:
		return "server default of " + strconv.Itoa(s.DefaultRateLimit)
	default:
		return "server default (unlimited)"
	}
}
