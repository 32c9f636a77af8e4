package domain

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAPIKeyService_Update(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{
			Name: "wide", Scopes: []string{"commands:read", "commands:write", "projects:read"},
			AllowedCIDRs: []string{"203.0.0.0/8"}, RateLimit: ptr(50), ExpiresAt: ptr(clk.Now().Add(48 * time.Hour)),
			Projects: []string{"api", "web"}, ProjectSelectors: []string{"team=payments"},
		})
		expires := clk.Now().Add(time.Hour)
		got, err := s.Update(operatorContext(t), k.ID, UpdateAPIKey{
			Name: ptr("narrow"), Scopes: []string{"commands:read"}, AllowedCIDRs: []string{"203.0.113.0/24"},
			RateLimit: ptr(5), ExpiresAt: &expires, Projects: []string{"api"}, ProjectSelectors: []string{"team=payments,tier=dev"},
		})
		if err != nil {
			t.Fatal(err)
		}
		wantProjects, _ := NewProjectScope([]string{"api"}, []string{"team=payments,tier=dev"})
		if got.Name != "narrow" || !reflect.DeepEqual(got.Scopes, Scopes{ScopeCommandsRead}) ||
			!reflect.DeepEqual(got.AllowedCIDRs, []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}) ||
			got.RateLimit != 5 || !got.ExpiresAt.Equal(expires) || !reflect.DeepEqual(got.Projects, wantProjects) {
			t.Errorf("updated key = %+v", got)
		}
		if got.Version != k.Version+1 {
			t.Errorf("Version = %d, want %d", got.Version, k.Version+1)
		}
		if !reflect.DeepEqual(repo.stored(k.ID), got) {
			t.Error("the update was not stored as returned")
		}
		if got.SecretHash != k.SecretHash {
			t.Error("the update changed the secret")
		}
		mustAuthenticate(t, s, token)
	})

	t.Run("OKRenameOnly", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "old", Scopes: []string{"admin"}})
		got, err := s.Update(operatorContext(t), k.ID, UpdateAPIKey{Name: ptr("new")})
		if err != nil {
			t.Fatal(err)
		}
		want := *k
		want.Name, want.Version = "new", k.Version+1
		if !reflect.DeepEqual(repo.stored(k.ID), &want) {
			t.Errorf("stored %+v\nwant   %+v", repo.stored(k.ID), &want)
		}
		if got.Name != "new" {
			t.Errorf("Name = %q", got.Name)
		}
	})

	t.Run("OKOnlyProjectNamesKeepsSelectors", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"projects:read"},
			Projects: []string{"api", "web"}, ProjectSelectors: []string{"team=a"}})
		got, err := s.Update(operatorContext(t), k.ID, UpdateAPIKey{Projects: []string{"web"}})
		if err != nil {
			t.Fatal(err)
		}
		if want, _ := NewProjectScope([]string{"web"}, []string{"team=a"}); !reflect.DeepEqual(got.Projects, want) {
			t.Errorf("Projects = %s, want %s", got.Projects, want)
		}
	})

	t.Run("OKSetsExpiryAndRestriction", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"projects:read"}})
		got, err := s.Update(operatorContext(t), k.ID, UpdateAPIKey{
			ExpiresAt: ptr(clk.Now().Add(time.Hour)), AllowedCIDRs: []string{"192.0.2.1"}, RateLimit: ptr(100_000),
			Projects: []string{"api"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.ExpiresAt == nil || len(got.AllowedCIDRs) != 1 || got.RateLimit != 100_000 || got.Projects.Unrestricted() {
			t.Errorf("updated key = %+v", got)
		}
	})

	t.Run("OKAudited", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "old", Scopes: []string{"commands:read", "commands:write"}})
		before := len(repo.audit.all())
		if _, err := s.Update(operatorContext(t), k.ID, UpdateAPIKey{Name: ptr("new"), Scopes: []string{"commands:read"}}); err != nil {
			t.Fatal(err)
		}
		entries := repo.audit.all()[before:]
		if len(entries) != 1 {
			t.Fatalf("%d audit entries, want 1", len(entries))
		}
		e := entries[0]
		want := map[string]string{
			"changed": "name,scopes", "name": "new", "nameBefore": "old",
			"scopes": "commands:read", "scopesBefore": "commands:read,commands:write",
		}
		if e.Action != AuditKeyUpdate || e.Target != k.ID || e.Outcome != AuditSuccess || !reflect.DeepEqual(e.Details, want) {
			t.Errorf("audit entry = %+v, details %v; want %s of %s, success, details %v", e, e.Details, AuditKeyUpdate, k.ID, want)
		}
	})

	t.Run("OKSelf", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		self, _ := mustCreateKey(t, s, CreateAPIKey{Name: "self", Scopes: []string{"keys:write", "projects:read"}})
		got, err := s.Update(keyContext(t, self), self.ID, UpdateAPIKey{Scopes: []string{"keys:write"}})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Scopes, Scopes{ScopeKeysWrite}) {
			t.Errorf("Scopes = %v", got.Scopes)
		}
	})

	t.Run("OKAncestor", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		root, _ := mustCreateKey(t, s, CreateAPIKey{Name: "root", Scopes: []string{"keys:write", "projects:read"}})
		child, _ := mustCreateChild(t, s, root, CreateAPIKey{Name: "child", Scopes: []string{"keys:write", "projects:read"}})
		grandchild, _ := mustCreateChild(t, s, child, CreateAPIKey{Name: "grandchild", Scopes: []string{"projects:read"}})
		if _, err := s.Update(keyContext(t, root), grandchild.ID, UpdateAPIKey{Name: ptr("renamed")}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OKAdminKey", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		admin, _ := mustCreateKey(t, s, CreateAPIKey{Name: "admin", Scopes: []string{"admin"}})
		other, _ := mustCreateKey(t, s, CreateAPIKey{Name: "other", Scopes: []string{"projects:read"}})
		if _, err := s.Update(keyContext(t, admin), other.ID, UpdateAPIKey{Name: ptr("renamed")}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OKNarrowedGuardEndsAtOnce", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read", "projects:read"}})
		ctx := guarded(t, s, token)
		if _, err := s.Update(operatorContext(t), k.ID, UpdateAPIKey{Name: ptr("renamed")}); err != nil {
			t.Fatal(err)
		}
		wantOpen(t, ctx)
		if _, err := s.Update(operatorContext(t), k.ID, UpdateAPIKey{Scopes: []string{"projects:read"}}); err != nil {
			t.Fatal(err)
		}
		wantEnded(t, ctx, EFORBIDDEN, "no longer holds every scope")
		if got := mustAuthenticate(t, s, token); !reflect.DeepEqual(got.Scopes, Scopes{ScopeProjectsRead}) {
			t.Errorf("authenticated with scopes %v, want the narrowed ones at once", got.Scopes)
		}
	})

	t.Run("OKChildrenWithin", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		parent, _ := mustCreateKey(t, s, CreateAPIKey{Name: "parent", Scopes: []string{"keys:write", "commands:read", "projects:read"}})
		if _, _, err := s.Create(keyContext(t, parent), CreateAPIKey{Name: "child", Scopes: []string{"projects:read"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(operatorContext(t), parent.ID, UpdateAPIKey{Scopes: []string{"keys:write", "projects:read"}}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OKWiderChildRevoked", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		parent, _ := mustCreateKey(t, s, CreateAPIKey{Name: "parent", Scopes: []string{"keys:write", "commands:read"}})
		child, _ := mustCreateChild(t, s, parent, CreateAPIKey{Name: "child", Scopes: []string{"commands:read"}})
		if _, _, err := s.Revoke(operatorContext(t), child.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Update(operatorContext(t), parent.ID, UpdateAPIKey{Scopes: []string{"keys:write"}}); err != nil {
			t.Fatal(err)
		}
	})

	for _, tt := range []struct {
		name, field string
		create      func(clk *clock) CreateAPIKey
		update      func(clk *clock) UpdateAPIKey
	}{
		{"ErrForbiddenWiderScopes", "scopes: ", func(*clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}}
		}, func(*clock) UpdateAPIKey { return UpdateAPIKey{Scopes: []string{"commands:read", "commands:write"}} }},
		{"ErrForbiddenAnyAddress", "allowedCIDRs: ", func(*clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}, AllowedCIDRs: []string{"203.0.113.0/24"}}
		}, func(*clock) UpdateAPIKey { return UpdateAPIKey{AllowedCIDRs: []string{}} }},
		{"ErrForbiddenWiderCIDR", "allowedCIDRs: ", func(*clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}, AllowedCIDRs: []string{"203.0.113.0/24"}}
		}, func(*clock) UpdateAPIKey {
			return UpdateAPIKey{AllowedCIDRs: []string{"203.0.113.0/24", "203.0.0.0/8"}}
		}},
		{"ErrForbiddenHigherRateLimit", "rateLimit: ", func(*clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}, RateLimit: ptr(10)}
		}, func(*clock) UpdateAPIKey { return UpdateAPIKey{RateLimit: ptr(11)} }},
		{"ErrForbiddenRateLimitToDefault", "rateLimit: ", func(*clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}, RateLimit: ptr(10)}
		}, func(*clock) UpdateAPIKey { return UpdateAPIKey{RateLimit: ptr(0)} }},
		{"ErrForbiddenAboveDefault", "rateLimit: ", func(*clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}}
		}, func(*clock) UpdateAPIKey { return UpdateAPIKey{RateLimit: ptr(101)} }},
		{"ErrForbiddenLaterExpiry", "expiresAt: ", func(clk *clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}, ExpiresAt: ptr(clk.Now().Add(time.Hour))}
		}, func(clk *clock) UpdateAPIKey { return UpdateAPIKey{ExpiresAt: ptr(clk.Now().Add(2 * time.Hour))} }},
		{"ErrForbiddenEveryProject", "projects, projectSelectors: ", func(*clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}, Projects: []string{"api"}}
		}, func(*clock) UpdateAPIKey { return UpdateAPIKey{Projects: []string{}} }},
		{"ErrForbiddenOtherProject", "projects, projectSelectors: ", func(*clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}, Projects: []string{"api"}}
		}, func(*clock) UpdateAPIKey { return UpdateAPIKey{Projects: []string{"api", "web"}} }},
		{"ErrForbiddenLooserSelector", "projects, projectSelectors: ", func(*clock) CreateAPIKey {
			return CreateAPIKey{Scopes: []string{"commands:read"}, ProjectSelectors: []string{"team=a,tier=dev"}}
		}, func(*clock) UpdateAPIKey { return UpdateAPIKey{ProjectSelectors: []string{"team=a"}} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, repo, clk := newTestKeyService()
			s.DefaultRateLimit = 100
			in := tt.create(clk)
			in.Name = "k"
			k, token := mustCreateKey(t, s, in)
			before := len(repo.audit.all())
			got, err := s.Update(operatorContext(t), k.ID, tt.update(clk))
			wantCode(t, err, EFORBIDDEN)
			if msg := ErrorMessage(err); !strings.HasPrefix(msg, tt.field) || !strings.HasSuffix(msg, "make a new key to widen it") {
				t.Errorf("message %q; want it to name %q and say to make a new key", msg, tt.field)
			}
			if got != nil {
				t.Errorf("Update returned %+v with an error", got)
			}
			if !reflect.DeepEqual(repo.stored(k.ID), k) {
				t.Error("the key changed")
			}
			entries := repo.audit.all()[before:]
			if len(entries) != 1 || entries[0].Action != AuditKeyUpdate || entries[0].Outcome != AuditDenied || entries[0].ErrorCode != EFORBIDDEN {
				t.Errorf("audit entries %+v; want one denied %s", entries, AuditKeyUpdate)
			}
			mustAuthenticate(t, s, token)
		})
	}

	t.Run("ErrConflictWiderChildren", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		parent, _ := mustCreateKey(t, s, CreateAPIKey{Name: "parent", Scopes: []string{"keys:write", "commands:read", "projects:read"},
			AllowedCIDRs: []string{"10.0.0.0/8"}})
		wide, _ := mustCreateChild(t, s, parent, CreateAPIKey{Name: "wide", Scopes: []string{"commands:read"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
		narrow, _ := mustCreateChild(t, s, parent, CreateAPIKey{Name: "narrow", Scopes: []string{"projects:read"}, AllowedCIDRs: []string{"10.1.0.0/16"}})
		for name, in := range map[string]UpdateAPIKey{
			"scopes":       {Scopes: []string{"keys:write", "projects:read"}},
			"allowedCIDRs": {AllowedCIDRs: []string{"10.1.0.0/16"}},
			"rateLimit":    {RateLimit: ptr(5)},
			"expiresAt":    {ExpiresAt: ptr(clk.Now().Add(time.Hour))},
			"projects":     {Projects: []string{"api"}},
		} {
			before := len(repo.audit.all())
			_, err := s.Update(operatorContext(t), parent.ID, in)
			wantCode(t, err, ECONFLICT)
			msg := ErrorMessage(err)
			if !strings.Contains(msg, wide.ID+" ("+name) || !strings.Contains(msg, "narrow or revoke them first") {
				t.Errorf("%s: message %q; want it to name %s and its %s", name, msg, wide.ID, name)
			}
			if name == "scopes" && strings.Contains(msg, narrow.ID) {
				t.Errorf("%s: message %q names %s, which stays within", name, msg, narrow.ID)
			}
			if !reflect.DeepEqual(repo.stored(parent.ID), parent) {
				t.Fatalf("%s: the parent changed", name)
			}
			if e := repo.audit.all()[before:]; len(e) != 1 || e[0].Outcome != AuditFailed || e[0].ErrorCode != ECONFLICT {
				t.Errorf("%s: audit entries %+v; want one failed with %s", name, e, ECONFLICT)
			}
		}
	})

	// Who may not rename a key: the key is left as it was.
	for _, tt := range []struct {
		name, code string
		keys       func(t *testing.T, s *APIKeyService) (caller, target *APIKey)
	}{
		{"ErrForbiddenNotManaged", EFORBIDDEN, func(t *testing.T, s *APIKeyService) (*APIKey, *APIKey) {
			caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"keys:write", "projects:read"}})
			target, _ := mustCreateKey(t, s, CreateAPIKey{Name: "target", Scopes: []string{"projects:read"}})
			return caller, target
		}},
		{"ErrForbiddenLacksItsScopes", EFORBIDDEN, func(t *testing.T, s *APIKeyService) (*APIKey, *APIKey) {
			caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"keys:write", "commands:read"}})
			target, _ := mustCreateChild(t, s, caller, CreateAPIKey{Name: "target", Scopes: []string{"commands:read"}})
			// The caller as it authenticated after losing commands:read:
			// it still created target, but may not change a key holding more.
			narrowed := *caller
			narrowed.Scopes = Scopes{ScopeKeysWrite}
			return &narrowed, target
		}},
		{"ErrNotFoundOutOfProjectScope", ENOTFOUND, func(t *testing.T, s *APIKeyService) (*APIKey, *APIKey) {
			caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"admin"}, Projects: []string{"api"}})
			target, _ := mustCreateKey(t, s, CreateAPIKey{Name: "target", Scopes: []string{"projects:read"}, Projects: []string{"web"}})
			return caller, target
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, repo, _ := newTestKeyService()
			caller, target := tt.keys(t, s)
			_, err := s.Update(keyContext(t, caller), target.ID, UpdateAPIKey{Name: ptr("mine")})
			wantCode(t, err, tt.code)
			if !reflect.DeepEqual(repo.stored(target.ID), target) {
				t.Error("the target changed")
			}
		})
	}

	t.Run("ErrForbiddenWithoutKeysWrite", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"keys:read"}})
		_, err := s.Update(keyContext(t, caller), caller.ID, UpdateAPIKey{Name: ptr("x")})
		wantCode(t, err, EFORBIDDEN)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		_, err := s.Update(operatorContext(t), NewID(clk.Now()), UpdateAPIKey{Name: ptr("x")})
		wantCode(t, err, ENOTFOUND)
		_, err = s.Update(operatorContext(t), "../../etc", UpdateAPIKey{Name: ptr("x")})
		wantCode(t, err, ENOTFOUND)
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		_, err := s.Update(t.Context(), k.ID, UpdateAPIKey{Name: ptr("x")})
		wantCode(t, err, EUNAUTHENTICATED)
	})

	for name, spoil := range map[string]func(t *testing.T, s *APIKeyService, clk *clock, id string){
		"ErrConflictRevoked": func(t *testing.T, s *APIKeyService, _ *clock, id string) {
			if _, _, err := s.Revoke(operatorContext(t), id); err != nil {
				t.Fatal(err)
			}
		},
		"ErrConflictExpired": func(_ *testing.T, _ *APIKeyService, clk *clock, _ string) { clk.Advance(2 * time.Hour) },
	} {
		t.Run(name, func(t *testing.T) {
			s, repo, clk := newTestKeyService()
			k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, ExpiresAt: ptr(clk.Now().Add(time.Hour))})
			spoil(t, s, clk, k.ID)
			before := repo.stored(k.ID)
			_, err := s.Update(operatorContext(t), k.ID, UpdateAPIKey{Name: ptr("x")})
			wantCode(t, err, ECONFLICT)
			if !reflect.DeepEqual(repo.stored(k.ID), before) {
				t.Error("the key changed")
			}
		})
	}

	for name, in := range map[string]UpdateAPIKey{
		"Nothing":       {},
		"EmptyName":     {Name: ptr(" ")},
		"NoScopes":      {Scopes: []string{}},
		"UnknownScope":  {Scopes: []string{"root"}},
		"BadCIDR":       {AllowedCIDRs: []string{"10.0.0.0/33"}},
		"RateLimit":     {RateLimit: ptr(-1)},
		"PastExpiry":    {ExpiresAt: ptr(time.Unix(0, 0))},
		"BadProject":    {Projects: []string{"Not_A_Name"}},
		"BadSelector":   {ProjectSelectors: []string{"=x"}},
		"TooManyScopes": {Scopes: make([]string, MaxKeyScopesEntries+1)},
	} {
		t.Run("ErrInvalid"+name, func(t *testing.T) {
			s, repo, _ := newTestKeyService()
			k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
			_, err := s.Update(operatorContext(t), k.ID, in)
			wantCode(t, err, EINVALID)
			if _, _, u := repo.calls(); u != 0 {
				t.Errorf("repo updated %d times", u)
			}
		})
	}
}
