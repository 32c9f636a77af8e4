package domain

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// mustCreateChild creates a key as the key parent and returns it with its
// token.
func mustCreateChild(tb testing.TB, s *APIKeyService, parent *APIKey, in CreateAPIKey) (*APIKey, string) {
	tb.Helper()
	k, token, err := s.Create(keyContext(tb, parent), in)
	if err != nil {
		tb.Fatalf("Create(%+v) as %s: %v", in, parent.Name, err)
	}
	return k, token
}

func TestAPIKeyService_CreateBounded(t *testing.T) {
	t.Run("OKWithinCreator", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		parent, _ := mustCreateKey(t, s, CreateAPIKey{
			Name: "parent", Scopes: []string{"keys:write", "projects:read"},
			AllowedCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"},
			ExpiresAt:    ptr(clk.Now().Add(48 * time.Hour)), RateLimit: ptr(50),
		})
		expires := clk.Now().Add(24 * time.Hour)
		k, _ := mustCreateChild(t, s, parent, CreateAPIKey{
			Name: "child", Scopes: []string{"projects:read"},
			AllowedCIDRs: []string{"10.1.0.0/16", "2001:db8:1::/48", "10.0.0.0/8"},
			ExpiresAt:    &expires, RateLimit: ptr(50),
		})
		if k.RateLimit != 50 || !k.ExpiresAt.Equal(expires) || len(k.AllowedCIDRs) != 3 {
			t.Errorf("Create = %+v, want the limits asked for", k)
		}
		if repo.stored(k.ID) == nil {
			t.Error("the key was not stored")
		}
	})

	t.Run("OKInheritsExpiryAndRateLimit", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		parent, _ := mustCreateKey(t, s, CreateAPIKey{
			Name: "parent", Scopes: []string{"keys:write", "projects:read"},
			ExpiresAt: ptr(clk.Now().Add(time.Hour)), RateLimit: ptr(7),
		})
		for _, rl := range []*int{nil, ptr(0)} {
			k, _ := mustCreateChild(t, s, parent, CreateAPIKey{Name: "child", Scopes: []string{"projects:read"}, RateLimit: rl})
			if k.ExpiresAt == nil || !k.ExpiresAt.Equal(*parent.ExpiresAt) || k.RateLimit != 7 {
				t.Errorf("Create = expiry %v, rate %d; want the creator's %v and 7", k.ExpiresAt, k.RateLimit, parent.ExpiresAt)
			}
			if stored := repo.stored(k.ID); stored.ExpiresAt == nil || stored.RateLimit != 7 {
				t.Errorf("stored %+v without the inherited limits", stored)
			}
		}
	})

	t.Run("OKServerDefaultRate", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		s.DefaultRateLimit = 100
		parent, _ := mustCreateKey(t, s, CreateAPIKey{Name: "parent", Scopes: []string{"keys:write", "projects:read"}})
		for _, rl := range []int{0, 1, 100} {
			k, _ := mustCreateChild(t, s, parent, CreateAPIKey{Name: "child", Scopes: []string{"projects:read"}, RateLimit: ptr(rl)})
			if k.RateLimit != rl {
				t.Errorf("RateLimit = %d, want %d", k.RateLimit, rl)
			}
		}
	})

	t.Run("OKUnlimitedServerDefault", func(t *testing.T) {
		s, _, _ := newTestKeyService() // DefaultRateLimit 0: requests unlimited
		parent, _ := mustCreateKey(t, s, CreateAPIKey{Name: "parent", Scopes: []string{"keys:write", "projects:read"}})
		k, _ := mustCreateChild(t, s, parent, CreateAPIKey{Name: "child", Scopes: []string{"projects:read"}, RateLimit: ptr(MaxKeyRateLimit)})
		if k.RateLimit != MaxKeyRateLimit {
			t.Errorf("RateLimit = %d, want %d", k.RateLimit, MaxKeyRateLimit)
		}
	})

	t.Run("OKAdminKeyIsBoundedToo", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		admin, _ := mustCreateKey(t, s, CreateAPIKey{Name: "admin", Scopes: []string{"admin"}, AllowedCIDRs: []string{"127.0.0.1"}})
		_, _, err := s.Create(keyContext(t, admin), CreateAPIKey{Name: "child", Scopes: []string{"admin"}})
		wantCode(t, err, EFORBIDDEN)
	})

	now := newClock().Now()
	tests := []struct {
		name        string
		defaultRate int
		parent      CreateAPIKey
		child       CreateAPIKey
		code, msg   string
	}{
		{
			// rdev issue 14: a key bound to 127.0.0.1/32 minted a child
			// with no CIDRs, no expiry and rateLimit 100000.
			name: "ErrForbiddenUnboundedChild", defaultRate: 100,
			parent: CreateAPIKey{AllowedCIDRs: []string{"127.0.0.1/32"}},
			child:  CreateAPIKey{RateLimit: ptr(100_000)},
			code:   EFORBIDDEN, msg: "allowedCIDRs: the creating key may only be used from 127.0.0.1/32",
		},
		{
			name:   "ErrForbiddenCIDROutside",
			parent: CreateAPIKey{AllowedCIDRs: []string{"127.0.0.1/32", "10.1.0.0/16"}},
			child:  CreateAPIKey{AllowedCIDRs: []string{"127.0.0.1", "10.2.0.0/16"}},
			code:   EFORBIDDEN, msg: "allowedCIDRs: 10.2.0.0/16 is not within",
		},
		{
			name:   "ErrForbiddenCIDRWider",
			parent: CreateAPIKey{AllowedCIDRs: []string{"10.1.0.0/16"}},
			child:  CreateAPIKey{AllowedCIDRs: []string{"10.0.0.0/8"}},
			code:   EFORBIDDEN, msg: "allowedCIDRs: 10.0.0.0/8 is not within the creating key's allowed CIDRs (10.1.0.0/16)",
		},
		{
			name:   "ErrForbiddenCIDROtherFamily",
			parent: CreateAPIKey{AllowedCIDRs: []string{"0.0.0.0/0"}},
			child:  CreateAPIKey{AllowedCIDRs: []string{"::1"}},
			code:   EFORBIDDEN, msg: "allowedCIDRs: ::1/128 is not within",
		},
		{
			name:   "ErrForbiddenExpiryLater",
			parent: CreateAPIKey{ExpiresAt: ptr(now.Add(time.Hour))},
			child:  CreateAPIKey{ExpiresAt: ptr(now.Add(time.Hour + time.Microsecond))},
			code:   EFORBIDDEN, msg: "expiresAt: ",
		},
		{
			name:   "ErrForbiddenRateAboveCreator",
			parent: CreateAPIKey{RateLimit: ptr(10)},
			child:  CreateAPIKey{RateLimit: ptr(11)},
			code:   EFORBIDDEN, msg: "rateLimit: 11 requests per second is more than the creating key's 10",
		},
		{
			name: "ErrForbiddenRateAboveDefault", defaultRate: 100,
			child: CreateAPIKey{RateLimit: ptr(101)},
			code:  EFORBIDDEN, msg: "rateLimit: 101 requests per second is more than the creating key's 100",
		},
		{
			name:   "ErrInvalidCIDRFirst",
			parent: CreateAPIKey{AllowedCIDRs: []string{"127.0.0.1/32"}},
			child:  CreateAPIKey{AllowedCIDRs: []string{"nope"}},
			code:   EINVALID, msg: "allowedCIDRs:",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, repo, _ := newTestKeyService()
			s.DefaultRateLimit = tt.defaultRate
			tt.parent.Name, tt.parent.Scopes = "parent", []string{"keys:write", "projects:read"}
			parent, _ := mustCreateKey(t, s, tt.parent)
			tt.child.Name, tt.child.Scopes = "child", []string{"projects:read"}
			before := repo.len()
			k, token, err := s.Create(keyContext(t, parent), tt.child)
			wantCode(t, err, tt.code)
			if !strings.Contains(ErrorMessage(err), tt.msg) {
				t.Errorf("message %q does not contain %q", ErrorMessage(err), tt.msg)
			}
			if k != nil || token != "" || repo.len() != before {
				t.Errorf("Create returned %+v, %q and stored %d keys; want nothing", k, token, repo.len()-before)
			}
			entries := repo.audit.all()
			if last := entries[len(entries)-1]; last.Action != AuditKeyCreate || last.Actor != parent.ID || last.ErrorCode != tt.code {
				t.Errorf("last audit entry %+v, want the refused key.create by %s", last, parent.ID)
			}
		})
	}
}

func TestPrefixWithin(t *testing.T) {
	tests := []struct {
		inner, outer string
		want         bool
	}{
		{"10.1.0.0/16", "10.0.0.0/8", true},
		{"10.0.0.0/8", "10.0.0.0/8", true},
		{"10.0.0.0/8", "10.1.0.0/16", false},
		{"127.0.0.1/32", "127.0.0.1/32", true},
		{"127.0.0.2/32", "127.0.0.1/32", false},
		{"::1/128", "::/0", true},
		{"::ffff:127.0.0.1/128", "127.0.0.0/8", false}, // ParseCIDRs unmaps these first
		{"127.0.0.1/32", "::/0", false},
		{"0.0.0.0/0", "0.0.0.0/0", true},
	}
	for _, tt := range tests {
		if got := prefixWithin(netip.MustParsePrefix(tt.inner), netip.MustParsePrefix(tt.outer)); got != tt.want {
			t.Errorf("prefixWithin(%s, %s) = %v, want %v", tt.inner, tt.outer, got, tt.want)
		}
	}
}
