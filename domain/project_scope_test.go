package domain

import (
	"strings"
	"testing"
	"time"
)

func mustScope(tb testing.TB, names []string, selectors ...string) ProjectScope {
	tb.Helper()
	s, err := NewProjectScope(names, selectors)
	if err != nil {
		tb.Fatalf("NewProjectScope(%q, %q): %v", names, selectors, err)
	}
	return s
}

func TestNewProjectScope_ErrInvalid(t *testing.T) {
	for _, tc := range []struct {
		names, selectors []string
	}{
		{names: []string{"Not_A_Label"}},
		{names: []string{""}},
		{selectors: []string{""}},
		{selectors: []string{"team==a"}},
		{names: make([]string, MaxScopeProjects+1)},
		{selectors: make([]string, MaxScopeSelectors+1)},
	} {
		_, err := NewProjectScope(tc.names, tc.selectors)
		if ErrorCode(err) != EINVALID {
			t.Errorf("NewProjectScope(%q, %q) = %v, want %s", tc.names, tc.selectors, err, EINVALID)
		}
	}
}

func TestProjectScope_Admits(t *testing.T) {
	payments := &Project{ID: "pay", Labels: map[string]string{"team": "payments"}}
	search := &Project{ID: "search", Labels: map[string]string{"team": "search"}}
	for _, tc := range []struct {
		scope      ProjectScope
		pay, srch  bool
		payByName  bool
		goneByName bool
	}{
		{scope: ProjectScope{}, pay: true, srch: true, payByName: true, goneByName: true},
		{scope: mustScope(t, []string{"pay", "gone"}), pay: true, payByName: true, goneByName: true},
		{scope: mustScope(t, nil, "team=payments"), pay: true},
		{scope: mustScope(t, []string{"search"}, "team=payments"), pay: true, srch: true},
	} {
		if got := tc.scope.Admits(payments); got != tc.pay {
			t.Errorf("%s admits pay = %v, want %v", tc.scope, got, tc.pay)
		}
		if got := tc.scope.Admits(search); got != tc.srch {
			t.Errorf("%s admits search = %v, want %v", tc.scope, got, tc.srch)
		}
		if got := tc.scope.AdmitsName("pay"); got != tc.payByName {
			t.Errorf("%s admits the name pay = %v, want %v", tc.scope, got, tc.payByName)
		}
		if got := tc.scope.AdmitsName("gone"); got != tc.goneByName {
			t.Errorf("%s admits the name gone = %v, want %v", tc.scope, got, tc.goneByName)
		}
	}
}

func TestProjectScope_Within(t *testing.T) {
	every := ProjectScope{}
	names := mustScope(t, []string{"a", "b"})
	sel := mustScope(t, nil, "team=payments", "env=dev")
	both := mustScope(t, []string{"a"}, "team=payments")
	for _, tc := range []struct {
		name          string
		child, parent ProjectScope
		ok            bool
	}{
		{"EveryWithinEvery", every, every, true},
		{"NamesWithinEvery", names, every, true},
		{"EveryWithinNames", every, names, false},
		{"SubsetOfNames", mustScope(t, []string{"b"}), names, true},
		{"OtherName", mustScope(t, []string{"b", "c"}), names, false},
		{"RefinedSelector", mustScope(t, nil, "team=payments,tier=web"), sel, true},
		{"SameSelector", mustScope(t, nil, "env=dev"), sel, true},
		{"WiderSelector", mustScope(t, nil, "tier=web"), sel, false},
		{"NameUnderSelectorsOnly", mustScope(t, []string{"a"}), sel, false},
		{"SelectorUnderNamesOnly", mustScope(t, nil, "team=payments"), names, false},
		{"Mixed", mustScope(t, []string{"a"}, "team=payments,env=dev"), both, true},
		{"MixedWiderName", mustScope(t, []string{"b"}, "team=payments"), both, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.child.Within(tc.parent)
			if tc.ok && err != nil {
				t.Fatalf("%s within %s: %v", tc.child, tc.parent, err)
			}
			if !tc.ok && ErrorCode(err) != EFORBIDDEN {
				t.Fatalf("%s within %s = %v, want %s", tc.child, tc.parent, err, EFORBIDDEN)
			}
		})
	}
}

func TestAPIKeyService_CreateProjectScope(t *testing.T) {
	s, _, _ := newTestKeyService()
	parent, _ := mustCreateKey(t, s, CreateAPIKey{Name: "team", Scopes: []string{"admin"}, ProjectSelectors: []string{"team=payments"}})
	if got := parent.Projects.SelectorStrings(); len(got) != 1 || got[0] != "team=payments" {
		t.Fatalf("created key's selectors = %q", got)
	}
	ctx := keyContext(t, parent)

	t.Run("OKRefined", func(t *testing.T) {
		k, _, err := s.Create(ctx, CreateAPIKey{Name: "child", Scopes: []string{"commands:read"}, ProjectSelectors: []string{"tier=web,team=payments"}})
		if err != nil {
			t.Fatal(err)
		}
		if k.Projects.String() != "{team=payments,tier=web}" {
			t.Errorf("child scope = %s", k.Projects)
		}
	})
	for name, in := range map[string]CreateAPIKey{
		"ErrForbiddenEvery":    {Name: "c", Scopes: []string{"commands:read"}},
		"ErrForbiddenName":     {Name: "c", Scopes: []string{"commands:read"}, Projects: []string{"pay"}},
		"ErrForbiddenSelector": {Name: "c", Scopes: []string{"commands:read"}, ProjectSelectors: []string{"tier=web"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := s.Create(ctx, in)
			if ErrorCode(err) != EFORBIDDEN || !strings.Contains(ErrorMessage(err), "project scope") {
				t.Fatalf("Create(%+v) = %v, want %s about the project scope", in, err, EFORBIDDEN)
			}
		})
	}
	t.Run("ErrInvalid", func(t *testing.T) {
		_, _, err := s.Create(ctx, CreateAPIKey{Name: "c", Scopes: []string{"commands:read"}, ProjectSelectors: []string{"team in ("}})
		if ErrorCode(err) != EINVALID {
			t.Fatalf("Create(bad selector) = %v, want %s", err, EINVALID)
		}
	})
	t.Run("ErrNotFoundRotateWider", func(t *testing.T) {
		wide, _ := mustCreateKey(t, s, CreateAPIKey{Name: "wide", Scopes: []string{"commands:read"}})
		if _, _, err := s.Rotate(ctx, wide.ID, 0); ErrorCode(err) != ENOTFOUND {
			t.Fatalf("Rotate(a key reaching every project) by a scoped key = %v, want %s", err, ENOTFOUND)
		}
	})
}

// A key limited to projects learns nothing of the keys outside its scope
// by trying to rotate or revoke them: they are NOT_FOUND, with the message
// of a key that does not exist, as apiKey says (rdev issue 14: FORBIDDEN
// told it the key existed, and that it reached other projects).
func TestAPIKeyService_ManageOutOfScope(t *testing.T) {
	s, repo, _ := newTestKeyService()
	admin, _ := mustCreateKey(t, s, CreateAPIKey{Name: "team admin", Scopes: []string{"admin"}, Projects: []string{"web"}})
	writer, _ := mustCreateKey(t, s, CreateAPIKey{Name: "team writer", Scopes: []string{"keys:write", "commands:read"}, Projects: []string{"web"}})
	outside, _ := mustCreateKey(t, s, CreateAPIKey{Name: "billing", Scopes: []string{"commands:read"}, Projects: []string{"billing"}})
	missing := NewID(time.Now())
	for _, caller := range []*APIKey{admin, writer} {
		for name, do := range map[string]func(id string) error{
			"Rotate": func(id string) error { _, _, err := s.Rotate(keyContext(t, caller), id, 0); return err },
			"Revoke": func(id string) error { _, _, err := s.Revoke(keyContext(t, caller), id); return err },
		} {
			t.Run(caller.Name+"/"+name, func(t *testing.T) {
				errMissing, errOutside := do(missing), do(outside.ID)
				wantCode(t, errOutside, ENOTFOUND)
				if want := strings.ReplaceAll(ErrorMessage(errMissing), missing, outside.ID); ErrorMessage(errOutside) != want {
					t.Errorf("out of scope: %q; want the message of a missing key, %q", ErrorMessage(errOutside), want)
				}
				if k := repo.stored(outside.ID); k.RevokedAt != nil || k.PreviousSecretHash != "" {
					t.Errorf("the key out of scope changed: %+v", k)
				}
			})
		}
	}
}
