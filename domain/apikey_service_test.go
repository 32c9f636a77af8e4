package domain

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

// clientAddr is where test requests come from unless a test says otherwise.
var clientAddr = netip.MustParseAddr("203.0.113.7")

func TestAPIKeyService_Create(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		expires := clk.Now().Add(90 * 24 * time.Hour).In(time.FixedZone("CET", 3600)).Add(123 * time.Nanosecond)
		k, token, err := s.Create(operatorContext(t), CreateAPIKey{
			Name:         "ci deploy ✓",
			Scopes:       []string{"projects:read", "commands:write", "projects:read"},
			ExpiresAt:    &expires,
			AllowedCIDRs: []string{"203.0.113.0/24", "2001:db8::1"},
			RateLimit:    ptr(50),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !validID(k.ID) {
			t.Errorf("ID %q is not a NewID", k.ID)
		}
		want := &APIKey{
			ID:           k.ID,
			Name:         "ci deploy ✓",
			Scopes:       Scopes{ScopeCommandsWrite, ScopeProjectsRead},
			SecretHash:   k.SecretHash,
			AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24"), netip.MustParsePrefix("2001:db8::1/128")},
			RateLimit:    50,
			CreatedAt:    clk.Now().UTC().Truncate(time.Microsecond),
			ExpiresAt:    ptr(expires.UTC().Truncate(time.Microsecond)),
			Version:      1,
		}
		if !reflect.DeepEqual(k, want) {
			t.Errorf("Create = %+v\nwant     %+v", k, want)
		}
		if stored := repo.stored(k.ID); !reflect.DeepEqual(stored, want) {
			t.Errorf("stored %+v\nwant   %+v", stored, want)
		}

		id, secret, err := ParseToken(token)
		if err != nil || id != k.ID {
			t.Fatalf("ParseToken(%q) = %q, %v; want id %q", token, id, err, k.ID)
		}
		if k.SecretHash != hashSecret(secret) || strings.Contains(k.SecretHash, secret) {
			t.Errorf("SecretHash %q is not the SHA-256 of the token's secret", k.SecretHash)
		}
		got, err := s.Authenticate(t.Context(), token, clientAddr)
		if err != nil {
			t.Fatalf("Authenticate(new token): %v", err)
		}
		if got.ID != k.ID {
			t.Errorf("Authenticate returned key %s, want %s", got.ID, k.ID)
		}
	})

	t.Run("OKMinimal", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		if k.ExpiresAt != nil || k.RateLimit != 0 || len(k.AllowedCIDRs) != 0 || k.CreatedBy != "" {
			t.Errorf("Create = %+v, want no expiry, rate limit, CIDRs or creator", k)
		}
		if repo.len() != 1 {
			t.Errorf("repo holds %d keys, want 1", repo.len())
		}
	})

	t.Run("OKRateLimitBounds", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		for _, rl := range []int{0, 1, MaxKeyRateLimit} {
			k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, RateLimit: ptr(rl)})
			if k.RateLimit != rl {
				t.Errorf("RateLimit = %d, want %d", k.RateLimit, rl)
			}
		}
	})

	t.Run("OKLongUnicodeName", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		name := strings.Repeat("ü", MaxKeyNameLength) // 200 bytes, 100 characters
		if k, _ := mustCreateKey(t, s, CreateAPIKey{Name: name, Scopes: []string{"admin"}}); k.Name != name {
			t.Errorf("Name = %q", k.Name)
		}
	})

	t.Run("OKCreatedBy", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		parent, _ := mustCreateKey(t, s, CreateAPIKey{Name: "parent", Scopes: []string{"keys:write", "projects:read"}})
		k, _, err := s.Create(keyContext(t, parent), CreateAPIKey{Name: "child", Scopes: []string{"projects:read"}})
		if err != nil {
			t.Fatal(err)
		}
		if k.CreatedBy != parent.ID || repo.stored(k.ID).CreatedBy != parent.ID {
			t.Errorf("CreatedBy = %q, want the caller's key %q", k.CreatedBy, parent.ID)
		}
	})

	t.Run("OKSameScopes", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		parent, _ := mustCreateKey(t, s, CreateAPIKey{Name: "parent", Scopes: []string{"keys:write", "keys:read"}})
		if _, _, err := s.Create(keyContext(t, parent), CreateAPIKey{Name: "twin", Scopes: []string{"keys:read", "keys:write"}}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OKAdminGrantsAnything", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		admin, _ := mustCreateKey(t, s, CreateAPIKey{Name: "admin", Scopes: []string{"admin"}})
		if _, _, err := s.Create(keyContext(t, admin), CreateAPIKey{Name: "all", Scopes: Scopes(AllScopes).Strings()}); err != nil {
			t.Fatal(err)
		}
	})

	for _, tt := range []struct {
		name   string
		caller []string
		scopes []string
	}{
		{"ErrForbiddenEscalationAdmin", []string{"keys:write", "projects:read"}, []string{"admin"}},
		{"ErrForbiddenEscalationOther", []string{"keys:write", "projects:read"}, []string{"projects:read", "commands:write"}},
		{"ErrForbiddenEscalationRead", []string{"keys:write"}, []string{"keys:read"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, repo, _ := newTestKeyService()
			caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: tt.caller})
			k, token, err := s.Create(keyContext(t, caller), CreateAPIKey{Name: "k", Scopes: tt.scopes})
			wantCode(t, err, EFORBIDDEN)
			if k != nil || token != "" {
				t.Errorf("Create returned %+v, %q with an error", k, token)
			}
			if n := repo.len(); n != 1 {
				t.Errorf("repo holds %d keys, want only the caller", n)
			}
		})
	}

	t.Run("ErrForbiddenWithoutKeysWrite", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "reader", Scopes: []string{"keys:read", "projects:read"}})
		_, _, err := s.Create(keyContext(t, caller), CreateAPIKey{Name: "k", Scopes: []string{"projects:read"}})
		wantCode(t, err, EFORBIDDEN)
		if repo.len() != 1 {
			t.Error("a key was stored")
		}
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		_, _, err := s.Create(t.Context(), CreateAPIKey{Name: "k", Scopes: []string{"projects:read"}})
		wantCode(t, err, EUNAUTHENTICATED)
		if c, _, _ := repo.calls(); c != 0 {
			t.Error("repo called")
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		repo.set(func(r *keyRepo) { r.createErr = Errorf(ECONFLICT, "exists") })
		k, token, err := s.Create(operatorContext(t), CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		wantCode(t, err, ECONFLICT)
		if k != nil || token != "" {
			t.Errorf("Create returned %+v, %q with an error", k, token)
		}
	})

	valid := CreateAPIKey{Name: "k", Scopes: []string{"projects:read"}}
	for _, tt := range []struct {
		name    string
		change  func(in *CreateAPIKey, now time.Time)
		message string
	}{
		{"ErrInvalidUnknownScope", func(in *CreateAPIKey, _ time.Time) { in.Scopes = []string{"projects:read", "projects:write"} }, `unknown scope "projects:write"`},
		{"ErrInvalidNoScopes", func(in *CreateAPIKey, _ time.Time) { in.Scopes = nil }, "scopes: at least one"},
		{"ErrInvalidTooManyScopes", func(in *CreateAPIKey, _ time.Time) { in.Scopes = repeat("admin", MaxKeyScopesEntries+1) }, "scopes: at most 32"},
		{"ErrInvalidEmptyName", func(in *CreateAPIKey, _ time.Time) { in.Name = "" }, "name: must not be empty"},
		{"ErrInvalidBlankName", func(in *CreateAPIKey, _ time.Time) { in.Name = " \t " }, "name: must not be empty"},
		{"ErrInvalidNewline", func(in *CreateAPIKey, _ time.Time) { in.Name = "ci\ndeploy" }, "control characters"},
		{"ErrInvalidNUL", func(in *CreateAPIKey, _ time.Time) { in.Name = "ci\x00" }, "control characters"},
		{"ErrInvalidEscape", func(in *CreateAPIKey, _ time.Time) { in.Name = "\x1b[31mred" }, "control characters"},
		{"ErrInvalidDEL", func(in *CreateAPIKey, _ time.Time) { in.Name = "ci\x7f" }, "control characters"},
		{"ErrInvalidBidiOverride", func(in *CreateAPIKey, _ time.Time) { in.Name = "ci\u202edeploy" }, "control characters"},
		{"ErrInvalidUTF8", func(in *CreateAPIKey, _ time.Time) { in.Name = "ci\xffdeploy" }, "valid UTF-8"},
		{"ErrInvalidLongName", func(in *CreateAPIKey, _ time.Time) { in.Name = strings.Repeat("n", MaxKeyNameLength+1) }, "at most 100 characters"},
		{"ErrInvalidPastExpiry", func(in *CreateAPIKey, now time.Time) { in.ExpiresAt = ptr(now.Add(-time.Hour)) }, "expiresAt: must be in the future"},
		{"ErrInvalidExpiryNow", func(in *CreateAPIKey, now time.Time) { in.ExpiresAt = ptr(now) }, "expiresAt: must be in the future"},
		{"ErrInvalidCIDR", func(in *CreateAPIKey, _ time.Time) { in.AllowedCIDRs = []string{"10.0.0.0/8", "10.0.0.0/99"} }, `"10.0.0.0/99"`},
		{"ErrInvalidTooManyCIDRs", func(in *CreateAPIKey, _ time.Time) { in.AllowedCIDRs = repeat("10.0.0.0/8", MaxAllowedCIDRs+1) }, "allowedCIDRs: at most"},
		{"ErrInvalidNegativeRateLimit", func(in *CreateAPIKey, _ time.Time) { in.RateLimit = ptr(-1) }, "rateLimit: must be between 0 and 100000"},
		{"ErrInvalidHugeRateLimit", func(in *CreateAPIKey, _ time.Time) { in.RateLimit = ptr(MaxKeyRateLimit + 1) }, "rateLimit:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, repo, clk := newTestKeyService()
			in := valid
			tt.change(&in, clk.Now())
			k, token, err := s.Create(operatorContext(t), in)
			wantCode(t, err, EINVALID)
			if msg := ErrorMessage(err); !strings.Contains(msg, tt.message) {
				t.Errorf("message %q does not contain %q", msg, tt.message)
			}
			if k != nil || token != "" {
				t.Errorf("Create returned %+v, %q with an error", k, token)
			}
			if c, _, _ := repo.calls(); c != 0 || repo.len() != 0 {
				t.Errorf("repo got %d creates and holds %d keys, want none", c, repo.len())
			}
		})
	}
}

func TestAPIKeyService_Get(t *testing.T) {
	s, repo, _ := newTestKeyService()
	k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"projects:read"}})
	reader := &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeKeysRead}}

	t.Run("OK", func(t *testing.T) {
		got, err := s.Get(keyContext(t, reader), k.ID)
		if err != nil || !reflect.DeepEqual(got, k) {
			t.Errorf("Get = %+v, %v; want %+v", got, err, k)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := s.Get(keyContext(t, reader), "0123456789abcdef")
		wantCode(t, err, ENOTFOUND)
	})

	for _, id := range []string{"", "nope", strings.ToUpper(k.ID), k.ID + "0", "rdev_" + k.ID} {
		t.Run("ErrNotFoundInvalidID", func(t *testing.T) {
			_, before, _ := repo.calls()
			_, err := s.Get(keyContext(t, reader), id)
			wantCode(t, err, ENOTFOUND)
			if _, after, _ := repo.calls(); after != before {
				t.Errorf("repo searched for invalid id %q", id)
			}
		})
	}

	t.Run("ErrForbidden", func(t *testing.T) {
		writer := &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeKeysWrite}}
		_, err := s.Get(keyContext(t, writer), k.ID)
		wantCode(t, err, EFORBIDDEN)
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		_, err := s.Get(t.Context(), k.ID)
		wantCode(t, err, EUNAUTHENTICATED)
	})
}

func TestAPIKeyService_List(t *testing.T) {
	s, _, clk := newTestKeyService()
	var want []string
	for range 5 {
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"projects:read"}})
		want = append(want, k.ID)
		clk.Advance(time.Millisecond)
	}
	ctx := keyContext(t, &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeKeysRead}})

	t.Run("OK", func(t *testing.T) {
		page, err := s.List(ctx, PageRequest{First: DefaultPageSize})
		if err != nil {
			t.Fatal(err)
		}
		if got := keyIDs(page.Items); !reflect.DeepEqual(got, want) {
			t.Errorf("List = %q, want %q (oldest first)", got, want)
		}
		if page.HasNextPage || page.HasPreviousPage {
			t.Errorf("HasNextPage, HasPreviousPage = %v, %v; want false, false", page.HasNextPage, page.HasPreviousPage)
		}
	})

	t.Run("OKPaged", func(t *testing.T) {
		type pageWant struct {
			ids            []string
			next, previous bool
		}
		wantPages := []pageWant{
			{want[0:2], true, false},
			{want[2:4], true, true},
			{want[4:5], false, true},
		}
		var after *string
		for i, wp := range wantPages {
			req, err := NewPageRequest(ptr(2), after)
			if err != nil {
				t.Fatal(err)
			}
			page, err := s.List(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			got := pageWant{keyIDs(page.Items), page.HasNextPage, page.HasPreviousPage}
			if !reflect.DeepEqual(got, wp) {
				t.Fatalf("page %d = %+v, want %+v", i, got, wp)
			}
			after = ptr(EncodeCursor(page.Items[len(page.Items)-1].ID))
		}
	})

	t.Run("OKFirstZero", func(t *testing.T) {
		page, err := s.List(ctx, PageRequest{First: 0})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 0 || !page.HasNextPage {
			t.Errorf("List(first: 0) = %d items, HasNextPage %v; want 0, true", len(page.Items), page.HasNextPage)
		}
	})

	t.Run("OKEmpty", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		page, err := s.List(ctx, PageRequest{First: 10})
		if err != nil || len(page.Items) != 0 || page.HasNextPage || page.HasPreviousPage {
			t.Errorf("List = %+v, %v; want an empty page", page, err)
		}
	})

	t.Run("ErrInternal", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		boom := errors.New("connection reset")
		repo.set(func(r *keyRepo) { r.findErr = boom })
		page, err := s.List(ctx, PageRequest{First: 1})
		if !errors.Is(err, boom) || page.Items != nil {
			t.Errorf("List = %+v, %v; want no items and %v", page, err, boom)
		}
	})

	t.Run("ErrForbidden", func(t *testing.T) {
		_, err := s.List(keyContext(t, &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeProjectsRead}}), PageRequest{First: 1})
		wantCode(t, err, EFORBIDDEN)
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		_, err := s.List(t.Context(), PageRequest{First: 1})
		wantCode(t, err, EUNAUTHENTICATED)
	})
}

func keyIDs(ks []*APIKey) []string {
	ids := make([]string, len(ks))
	for i, k := range ks {
		ids[i] = k.ID
	}
	return ids
}
