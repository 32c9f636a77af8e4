package domain

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAPIKey_Status(t *testing.T) {
	now := newClock().Now()
	for _, tt := range []struct {
		name string
		key  APIKey
		at   time.Time
		want APIKeyStatus
	}{
		{"NoExpiry", APIKey{}, now, APIKeyActive},
		{"BeforeExpiry", APIKey{ExpiresAt: ptr(now)}, now.Add(-time.Nanosecond), APIKeyActive},
		{"AtExpiry", APIKey{ExpiresAt: ptr(now)}, now, APIKeyExpired},
		{"AfterExpiry", APIKey{ExpiresAt: ptr(now)}, now.Add(time.Nanosecond), APIKeyExpired},
		{"AtExpiryOtherZone", APIKey{ExpiresAt: ptr(now)}, now.In(time.FixedZone("X", 3600)), APIKeyExpired},
		{"Revoked", APIKey{RevokedAt: ptr(now)}, now.Add(-time.Hour), APIKeyRevoked},
		{"RevokedBeatsExpired", APIKey{RevokedAt: ptr(now), ExpiresAt: ptr(now)}, now.Add(time.Hour), APIKeyRevoked},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.key.Status(tt.at); got != tt.want {
				t.Errorf("Status(%v) = %s, want %s", tt.at, got, tt.want)
			}
		})
	}
}

func TestAPIKey_MatchesSecret(t *testing.T) {
	now := newClock().Now()
	graceEnd := now.Add(time.Hour)
	k := &APIKey{
		SecretHash:              hashSecret("current"),
		PreviousSecretHash:      hashSecret("previous"),
		PreviousSecretExpiresAt: &graceEnd,
	}
	for _, tt := range []struct {
		name   string
		secret string
		at     time.Time
		want   bool
	}{
		{"Current", "current", now, true},
		{"CurrentAfterGrace", "current", graceEnd.Add(time.Hour), true},
		{"PreviousWithinGrace", "previous", now, true},
		{"PreviousJustBeforeGraceEnds", "previous", graceEnd.Add(-time.Nanosecond), true},
		{"PreviousWhenGraceEnds", "previous", graceEnd, false},
		{"PreviousAfterGrace", "previous", graceEnd.Add(time.Second), false},
		{"Wrong", "wrong", now, false},
		{"Empty", "", now, false},
		{"CurrentWithSuffix", "current ", now, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := k.MatchesSecret(tt.secret, tt.at); got != tt.want {
				t.Errorf("MatchesSecret(%q, %v) = %v, want %v", tt.secret, tt.at, got, tt.want)
			}
		})
	}

	t.Run("PreviousWithoutExpiry", func(t *testing.T) {
		k := &APIKey{SecretHash: hashSecret("current"), PreviousSecretHash: hashSecret("previous")}
		if k.MatchesSecret("previous", now) {
			t.Error("a previous secret without an expiry still matches")
		}
	})

	t.Run("EmptyHashes", func(t *testing.T) {
		k := &APIKey{PreviousSecretExpiresAt: &graceEnd}
		if k.MatchesSecret("", now) {
			t.Error("a key without hashes matches the empty secret")
		}
	})
}

func TestAPIKey_AllowsAddr(t *testing.T) {
	cidrs := mustParseCIDRs(t, "10.0.0.0/8", "192.168.1.7", "2001:db8::/32")
	for _, tt := range []struct {
		name  string
		cidrs []netip.Prefix
		addr  string
		want  bool
	}{
		{"EmptyAllowsV4", nil, "203.0.113.9", true},
		{"EmptyAllowsV6", nil, "2001:db8::1", true},
		{"EmptyAllowsZero", nil, "", true},
		{"V4Inside", cidrs, "10.255.0.1", true},
		{"V4Outside", cidrs, "11.0.0.1", false},
		{"V4Single", cidrs, "192.168.1.7", true},
		{"V4NextToSingle", cidrs, "192.168.1.8", false},
		{"V6Inside", cidrs, "2001:db8:1::1", true},
		{"V6Outside", cidrs, "2001:db9::1", false},
		{"V4MappedInside", cidrs, "::ffff:10.0.0.1", true},
		{"V4MappedSingle", cidrs, "::ffff:192.168.1.7", true},
		{"V4MappedOutside", cidrs, "::ffff:11.0.0.1", false},
		{"Loopback", cidrs, "127.0.0.1", false},
		{"ZeroAddr", cidrs, "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var addr netip.Addr
			if tt.addr != "" {
				addr = netip.MustParseAddr(tt.addr)
			}
			k := &APIKey{AllowedCIDRs: tt.cidrs}
			if got := k.AllowsAddr(addr); got != tt.want {
				t.Errorf("AllowsAddr(%v) with %v = %v, want %v", addr, tt.cidrs, got, tt.want)
			}
		})
	}

	t.Run("V4MappedPrefix", func(t *testing.T) {
		k := &APIKey{AllowedCIDRs: mustParseCIDRs(t, "::ffff:10.0.0.0/104")}
		for _, a := range []string{"10.0.0.1", "::ffff:10.0.0.1"} {
			if !k.AllowsAddr(netip.MustParseAddr(a)) {
				t.Errorf("::ffff:10.0.0.0/104 does not allow %s", a)
			}
		}
	})

	t.Run("ZonedV6", func(t *testing.T) {
		k := &APIKey{AllowedCIDRs: mustParseCIDRs(t, "fe80::/10")}
		if !k.AllowsAddr(netip.MustParseAddr("fe80::1%eth0")) {
			t.Error("fe80::/10 does not allow fe80::1 with zone eth0")
		}
	})
}

func mustParseCIDRs(tb testing.TB, entries ...string) []netip.Prefix {
	tb.Helper()
	ps, err := ParseCIDRs(entries)
	if err != nil {
		tb.Fatalf("ParseCIDRs(%q): %v", entries, err)
	}
	return ps
}

func TestParseCIDRs(t *testing.T) {
	for _, tt := range []struct {
		name    string
		entries []string
		want    []string
	}{
		{"Nil", nil, []string{}},
		{"V4", []string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}},
		{"V6", []string{"2001:db8::/32"}, []string{"2001:db8::/32"}},
		{"BareV4", []string{"192.0.2.1"}, []string{"192.0.2.1/32"}},
		{"BareV6", []string{"2001:db8::1"}, []string{"2001:db8::1/128"}},
		{"BareV4Mapped", []string{"::ffff:192.0.2.1"}, []string{"192.0.2.1/32"}},
		{"MasksV4", []string{"10.1.2.3/8"}, []string{"10.0.0.0/8"}},
		{"MasksV6", []string{"2001:db8:1:2::3/32"}, []string{"2001:db8::/32"}},
		{"Everything", []string{"0.0.0.0/0", "::/0"}, []string{"0.0.0.0/0", "::/0"}},
		{"TrimsSpace", []string{" 10.0.0.0/8\n"}, []string{"10.0.0.0/8"}},
		{"KeepsOrder", []string{"2001:db8::/32", "10.0.0.0/8"}, []string{"2001:db8::/32", "10.0.0.0/8"}},
		{"MaxEntries", repeat("10.0.0.0/8", MaxAllowedCIDRs), repeat("10.0.0.0/8", MaxAllowedCIDRs)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCIDRs(tt.entries)
			if err != nil {
				t.Fatalf("ParseCIDRs(%q): %v", tt.entries, err)
			}
			gotStrings := make([]string, len(got))
			for i, p := range got {
				gotStrings[i] = p.String()
			}
			if !reflect.DeepEqual(gotStrings, tt.want) {
				t.Errorf("ParseCIDRs(%q) = %q, want %q", tt.entries, gotStrings, tt.want)
			}
		})
	}

	for _, tt := range []struct {
		name    string
		entries []string
		message string
	}{
		{"ErrGarbage", []string{"10.0.0.0/8", "not an address"}, `"not an address" is not a CIDR prefix`},
		{"ErrEmptyEntry", []string{""}, `"" is not a CIDR prefix`},
		{"ErrPrefixTooLong", []string{"10.0.0.0/33"}, `"10.0.0.0/33"`},
		{"ErrV6PrefixTooLong", []string{"2001:db8::/129"}, `"2001:db8::/129"`},
		{"ErrNegativeBits", []string{"10.0.0.0/-1"}, `"10.0.0.0/-1"`},
		{"ErrHostname", []string{"example.com"}, `"example.com"`},
		{"ErrRange", []string{"10.0.0.1-10.0.0.9"}, `"10.0.0.1-10.0.0.9"`},
		{"ErrShortV4", []string{"10.1"}, `"10.1"`},
		{"ErrZoneBare", []string{"fe80::1%eth0"}, `"fe80::1%eth0"`},
		{"ErrZonePrefix", []string{"fe80::%eth0/64"}, `"fe80::%eth0/64"`},
		{"ErrPort", []string{"10.0.0.1:80"}, `"10.0.0.1:80"`},
		{"ErrTooMany", repeat("10.0.0.0/8", MaxAllowedCIDRs+1), fmt.Sprintf("at most %d entries, got %d", MaxAllowedCIDRs, MaxAllowedCIDRs+1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCIDRs(tt.entries)
			wantCode(t, err, EINVALID)
			if msg := ErrorMessage(err); !strings.HasPrefix(msg, "allowedCIDRs: ") || !strings.Contains(msg, tt.message) {
				t.Errorf("message %q, want allowedCIDRs: …%s…", msg, tt.message)
			}
			if got != nil {
				t.Errorf("ParseCIDRs returned %v with an error", got)
			}
		})
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func FuzzParseCIDRs(f *testing.F) {
	for _, s := range []string{
		"", "10.0.0.0/8", "10.1.2.3/8", "192.0.2.1", "2001:db8::/32", "2001:db8::1",
		"::ffff:10.0.0.1", "::ffff:10.0.0.0/104", "fe80::1%eth0", "0.0.0.0/0,::/0",
		"10.0.0.0/33", " 10.0.0.0/8 ,2001:db8::1", "garbage",
	} {
		f.Add(s)
	}
	// The input is a comma-separated list, as a form field would carry it.
	f.Fuzz(func(t *testing.T, list string) {
		entries := strings.Split(list, ",")
		got, err := ParseCIDRs(entries)
		if err != nil {
			if ErrorCode(err) != EINVALID || got != nil {
				t.Fatalf("ParseCIDRs(%q) = %v, %v; want nil and %s", entries, got, err, EINVALID)
			}
			return
		}
		if len(got) != len(entries) {
			t.Fatalf("ParseCIDRs(%q) returned %d prefixes", entries, len(got))
		}
		for i, p := range got {
			if !p.IsValid() || p != p.Masked() || p.Addr().Zone() != "" {
				t.Fatalf("ParseCIDRs(%q)[%d] = %v: want a valid masked prefix without zone", entries, i, p)
			}
			// What is stored must parse back to itself, as a database
			// adapter will re-read it.
			again, err := ParseCIDRs([]string{p.String()})
			if err != nil || again[0] != p {
				t.Fatalf("ParseCIDRs(%q) = %v, %v; want %v", p.String(), again, err, p)
			}
			// A bare address allows exactly itself.
			if a, err := netip.ParseAddr(strings.TrimSpace(entries[i])); err == nil {
				k := &APIKey{AllowedCIDRs: []netip.Prefix{p}}
				if !k.AllowsAddr(a) {
					t.Fatalf("%q parsed to %v, which does not allow %v", entries[i], p, a)
				}
			}
		}
	})
}
