package domain

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// boundByCreator keeps k, which the key parent is creating, within what
// parent may do itself, so that making a key never widens access:
//
//   - allowedCIDRs: when parent has some, k must have some, each inside
//     one of parent's (no default: where a key is used from is stated, not
//     guessed);
//   - expiresAt: when parent expires, k expires no later; omitted, it is
//     parent's;
//   - rateLimit: no more than parent's effective rate (its own, or the
//     server default when it has none); omitted or 0, it is parent's own
//     setting, which is never more.
//
// It returns EFORBIDDEN naming the field that exceeds parent's.
func (s *APIKeyService) boundByCreator(k, parent *APIKey) error {
	if err := cidrsWithin(k.AllowedCIDRs, parent.AllowedCIDRs); err != nil {
		return err
	}
	if parent.ExpiresAt != nil {
		switch {
		case k.ExpiresAt == nil:
			k.ExpiresAt = utcMicros(parent.ExpiresAt)
		case k.ExpiresAt.After(*parent.ExpiresAt):
			return Errorf(EFORBIDDEN, "expiresAt: %s is after %s, when the creating key expires; a key cannot outlive the key that creates it",
				AuditTime(*k.ExpiresAt), AuditTime(*parent.ExpiresAt))
		}
	}
	if k.RateLimit == 0 {
		k.RateLimit = parent.RateLimit
		return nil
	}
	if !s.rateLimitWithin(k.RateLimit, parent) {
		return Errorf(EFORBIDDEN, "rateLimit: %d requests per second is more than the creating key's %d", k.RateLimit, s.effectiveRateLimit(parent))
	}
	return nil
}

// rateLimitWithin reports whether a key whose own rate limit is rate (0:
// the server default) is held to no more than bound is: 0 only when bound
// follows the default too (a default may be raised), otherwise no more
// than bound's effective rate.
func (s *APIKeyService) rateLimitWithin(rate int, bound *APIKey) bool {
	if rate == 0 {
		return bound.RateLimit == 0
	}
	limit := s.effectiveRateLimit(bound)
	return limit == 0 || rate <= limit
}

// expiryWithin reports whether a key expiring at (nil: never) stops
// working no later than one expiring at bound.
func expiryWithin(at, bound *time.Time) bool {
	return bound == nil || (at != nil && !at.After(*bound))
}

// effectiveRateLimit returns k's requests per second, 0 for unlimited.
func (s *APIKeyService) effectiveRateLimit(k *APIKey) int {
	if k.RateLimit > 0 {
		return k.RateLimit
	}
	return s.DefaultRateLimit
}

// cidrsWithin returns EFORBIDDEN unless every prefix of child lies inside
// one of parent's, or parent has none (any address).
func cidrsWithin(child, parent []netip.Prefix) error {
	outside, beyond := cidrsBeyond(child, parent)
	switch {
	case !beyond:
		return nil
	case !outside.IsValid():
		return Errorf(EFORBIDDEN, "allowedCIDRs: the creating key may only be used from %s, so the keys it creates must list allowedCIDRs within those",
			joinPrefixes(parent))
	default:
		return Errorf(EFORBIDDEN, "allowedCIDRs: %s is not within the creating key's allowed CIDRs (%s)", outside, joinPrefixes(parent))
	}
}

// cidrsBeyond reports whether child admits an address parent does not,
// and if so the first prefix of child outside all of parent's, or the
// zero prefix when child has none (any address) and parent has some.
func cidrsBeyond(child, parent []netip.Prefix) (outside netip.Prefix, beyond bool) {
	if len(parent) == 0 {
		return netip.Prefix{}, false
	}
	if len(child) == 0 {
		return netip.Prefix{}, true
	}
	for _, c := range child {
		if !slices.ContainsFunc(parent, func(p netip.Prefix) bool { return prefixWithin(c, p) }) {
			return c, true
		}
	}
	return netip.Prefix{}, false
}

// prefixWithin reports whether every address of inner is in outer. Both
// must be of one family: ParseCIDRs has unmapped IPv4-mapped prefixes.
func prefixWithin(inner, outer netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// joinPrefixes lists prefixes for a message, the first few of a long list.
func joinPrefixes(ps []netip.Prefix) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String()
	}
	return joinFirst(parts, 4)
}

// joinFirst lists the first shown of parts for a message, and how many
// more there are.
func joinFirst(parts []string, shown int) string {
	s := strings.Join(parts[:min(len(parts), shown)], ", ")
	if len(parts) > shown {
		s += fmt.Sprintf(" and %d more", len(parts)-shown)
	}
	return s
}
