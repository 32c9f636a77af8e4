package domain

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseScopes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		names []string
		want  Scopes
	}{
		{"OK", []string{"projects:read"}, Scopes{ScopeProjectsRead}},
		{"Sorted", []string{"keys:write", "audit:read", "projects:read"}, Scopes{ScopeAuditRead, ScopeKeysWrite, ScopeProjectsRead}},
		{"Deduplicated", []string{"keys:read", "keys:read", "admin", "keys:read"}, Scopes{ScopeAdmin, ScopeKeysRead}},
		{"TrimsSpace", []string{" keys:read\t", "keys:read"}, Scopes{ScopeKeysRead}},
		{"Every", Scopes(AllScopes).Strings(), sortedAllScopes()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := slices.Clone(tt.names)
			got, err := ParseScopes(tt.names)
			if err != nil {
				t.Fatalf("ParseScopes(%q): %v", tt.names, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseScopes(%q) = %q, want %q", tt.names, got, tt.want)
			}
			if !slices.Equal(in, tt.names) {
				t.Errorf("ParseScopes changed its input to %q", tt.names)
			}
		})
	}

	for _, tt := range []struct {
		name    string
		names   []string
		message string
	}{
		{"ErrNil", nil, "scopes: at least one scope is required"},
		{"ErrEmpty", []string{}, "scopes: at least one scope is required"},
		{"ErrUnknown", []string{"keys:read", "keys:delete"}, `unknown scope "keys:delete"`},
		{"ErrEmptyName", []string{""}, `unknown scope ""`},
		{"ErrUppercase", []string{"ADMIN"}, `unknown scope "ADMIN"`},
		{"ErrWildcard", []string{"keys:*"}, `unknown scope "keys:*"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseScopes(tt.names)
			wantCode(t, err, EINVALID)
			if msg := ErrorMessage(err); !strings.Contains(msg, tt.message) {
				t.Errorf("message %q does not contain %q", msg, tt.message)
			}
			if got != nil {
				t.Errorf("ParseScopes returned %q with an error", got)
			}
		})
	}

	t.Run("ErrUnknownListsKnown", func(t *testing.T) {
		_, err := ParseScopes([]string{"root"})
		for _, s := range AllScopes {
			if !strings.Contains(ErrorMessage(err), string(s)) {
				t.Errorf("message %q does not list %q", ErrorMessage(err), s)
			}
		}
	})
}

func sortedAllScopes() Scopes {
	s := slices.Clone(Scopes(AllScopes))
	slices.Sort(s)
	return s
}

func TestScope_Valid(t *testing.T) {
	for _, s := range AllScopes {
		if !s.Valid() {
			t.Errorf("%q.Valid() = false", s)
		}
	}
	for _, s := range []Scope{"", "Admin", "keys", "keys:", ":read", "projects:write"} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true", s)
		}
	}
}

func TestScopes_Has(t *testing.T) {
	for _, tt := range []struct {
		name  string
		set   Scopes
		scope Scope
		want  bool
	}{
		{"Direct", Scopes{ScopeKeysRead, ScopeProjectsRead}, ScopeProjectsRead, true},
		{"Missing", Scopes{ScopeKeysRead}, ScopeKeysWrite, false},
		{"WriteDoesNotImplyRead", Scopes{ScopeKeysWrite}, ScopeKeysRead, false},
		{"Empty", nil, ScopeProjectsRead, false},
		{"EmptyAdmin", nil, ScopeAdmin, false},
		{"AdminItself", Scopes{ScopeAdmin}, ScopeAdmin, true},
		{"OtherDoesNotImplyAdmin", Scopes{ScopeKeysWrite, ScopeKeysRead}, ScopeAdmin, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.Has(tt.scope); got != tt.want {
				t.Errorf("%q.Has(%q) = %v, want %v", tt.set, tt.scope, got, tt.want)
			}
		})
	}

	t.Run("AdminImpliesAll", func(t *testing.T) {
		for _, s := range AllScopes {
			if !(Scopes{ScopeAdmin}).Has(s) {
				t.Errorf("admin does not have %q", s)
			}
		}
	})
}

func TestScopes_Covers(t *testing.T) {
	for _, tt := range []struct {
		name       string
		set, other Scopes
		want       bool
	}{
		{"Equal", Scopes{ScopeKeysRead, ScopeKeysWrite}, Scopes{ScopeKeysRead, ScopeKeysWrite}, true},
		{"Subset", Scopes{ScopeKeysRead, ScopeKeysWrite}, Scopes{ScopeKeysRead}, true},
		{"Superset", Scopes{ScopeKeysRead}, Scopes{ScopeKeysRead, ScopeKeysWrite}, false},
		{"Disjoint", Scopes{ScopeKeysRead}, Scopes{ScopeAuditRead}, false},
		{"OtherEmpty", Scopes{ScopeKeysRead}, nil, true},
		{"BothEmpty", nil, nil, true},
		{"AdminCoversAll", Scopes{ScopeAdmin}, Scopes(AllScopes), true},
		{"AllButAdminDoesNotCoverAdmin", Scopes(AllScopes[:len(AllScopes)-1]), Scopes{ScopeAdmin}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.set.Covers(tt.other); got != tt.want {
				t.Errorf("%q.Covers(%q) = %v, want %v", tt.set, tt.other, got, tt.want)
			}
		})
	}
}

func TestScopes_Strings(t *testing.T) {
	if got := (Scopes{ScopeAdmin, ScopeKeysRead}).Strings(); !slices.Equal(got, []string{"admin", "keys:read"}) {
		t.Errorf("Strings() = %q", got)
	}
	if got := Scopes(nil).Strings(); got == nil || len(got) != 0 {
		t.Errorf("Scopes(nil).Strings() = %#v, want an empty slice", got)
	}
}

func FuzzParseScopes(f *testing.F) {
	for _, s := range []string{
		"", "admin", "keys:read,keys:write", "keys:read,keys:read", " audit:read ,admin",
		"keys:delete", ",", "projects:read,,", strings.Join(Scopes(AllScopes).Strings(), ","),
	} {
		f.Add(s)
	}
	// The input is a comma-separated list, as a CLI flag would carry it.
	f.Fuzz(func(t *testing.T, list string) {
		var names []string
		if list != "" {
			names = strings.Split(list, ",")
		}
		got, err := ParseScopes(names)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ParseScopes(%q): code %q, want %s", names, ErrorCode(err), EINVALID)
			}
			return
		}
		if len(got) == 0 || !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Fatalf("ParseScopes(%q) = %q: want a non-empty sorted set", names, got)
		}
		for _, s := range got {
			if !s.Valid() || !containsTrimmed(names, string(s)) {
				t.Fatalf("ParseScopes(%q) = %q: %q is unknown or not asked for", names, got, s)
			}
		}
		for _, n := range names {
			if !slices.Contains(got, Scope(strings.TrimSpace(n))) {
				t.Fatalf("ParseScopes(%q) = %q dropped %q", names, got, n)
			}
		}
		again, err := ParseScopes(got.Strings())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("ParseScopes(%q) = %q, %v; want %q again", got.Strings(), again, err, got)
		}
	})
}

func containsTrimmed(names []string, s string) bool {
	return slices.ContainsFunc(names, func(n string) bool { return strings.TrimSpace(n) == s })
}
