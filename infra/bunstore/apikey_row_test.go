package bunstore

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rdev-hq/rdev/domain"
)

func TestAPIKeyRow(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		zone := time.FixedZone("X", -7*3600)
		created := time.Date(2026, 11, 23, 10, 0, 0, 123456789, zone)
		k := &domain.APIKey{
			ID: "06h0i1vtve0e24r9", Name: "n", Scopes: domain.Scopes{domain.ScopeAdmin},
			AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8")},
			CreatedAt:    created, ExpiresAt: &created,
		}
		row := newAPIKeyRow(k)
		if row.Scopes == nil || row.AllowedIPs[1].Position != 1 || row.AllowedIPs[1].CIDR != "10.0.0.0/8" {
			t.Fatalf("row = %+v", row)
		}
		// Stored rows come back in any order; position decides.
		row.AllowedIPs[0], row.AllowedIPs[1] = row.AllowedIPs[1], row.AllowedIPs[0]
		got, err := row.apiKey()
		if err != nil {
			t.Fatal(err)
		}
		want := *k
		want.CreatedAt = created.UTC().Truncate(time.Microsecond)
		want.ExpiresAt = &want.CreatedAt
		if diff := cmp.Diff(&want, got, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		if got.CreatedAt.Location() != time.UTC || got.ExpiresAt.Location() != time.UTC {
			t.Errorf("times not in UTC: %v, %v", got.CreatedAt, got.ExpiresAt)
		}
	})

	t.Run("ErrCorruptCIDR", func(t *testing.T) {
		row := &apiKeyRow{ID: "x", AllowedIPs: []*allowedIPRow{{KeyID: "x", CIDR: "not a prefix"}}}
		if _, err := row.apiKey(); err == nil {
			t.Fatal("a stored CIDR that does not parse was accepted")
		}
	})
}
