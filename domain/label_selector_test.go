package domain

import (
	"strings"
	"testing"
)

func TestParseLabelSelector_OK(t *testing.T) {
	for _, tc := range []struct {
		in, canonical string
	}{
		{"team=payments", "team=payments"},
		{" tier!=prod , team=payments ", "team=payments,tier!=prod"},
		{"env in (staging, dev,dev)", "env in (dev,staging)"},
		{"env notin(prod)", "env notin (prod)"},
		{"rdev.dev/owner", "rdev.dev/owner"},
		{"!frozen,team=a,team=a", "!frozen,team=a"},
		{"team=", "team="},
		{"example.com/team=pay_ments.x", "example.com/team=pay_ments.x"},
	} {
		s, err := ParseLabelSelector(tc.in)
		if err != nil {
			t.Errorf("ParseLabelSelector(%q): %v", tc.in, err)
			continue
		}
		if got := s.String(); got != tc.canonical {
			t.Errorf("ParseLabelSelector(%q).String() = %q, want %q", tc.in, got, tc.canonical)
		}
		again, err := ParseLabelSelector(s.String())
		if err != nil || again.String() != s.String() {
			t.Errorf("canonical %q does not parse to itself: %q, %v", s, again, err)
		}
	}
}

func TestParseLabelSelector_ErrInvalid(t *testing.T) {
	for _, in := range []string{
		"", "  ", ",", "team=a,", ",team=a", "team==a", "team=a b", "team=-a", "Team Name=a",
		"team in ()", "team in (a,,b)", "team in a,b", "team in (a", "team in (a))", "team in ((a))",
		"team notin", "team inn (a)", "team on (a)", "!", "!team=a", "team!", "team!a", "=a", "!=a",
		"team=" + strings.Repeat("a", 64), "/team=a", "a/b/c=d", "team in (a) x",
		strings.Repeat("a=b,", MaxSelectorRequirements) + "c=d", strings.Repeat("x", MaxSelectorLength+1),
	} {
		if _, err := ParseLabelSelector(in); ErrorCode(err) != EINVALID {
			t.Errorf("ParseLabelSelector(%q) = %v, want %s", in, err, EINVALID)
		}
	}
}

func TestLabelSelector_Matches(t *testing.T) {
	labels := map[string]string{"team": "payments", "env": "dev", "frozen": ""}
	for _, tc := range []struct {
		sel  string
		want bool
	}{
		{"team=payments", true},
		{"team=search", false},
		{"team!=search", true},
		{"owner!=bob", true}, // absent passes !=
		{"env in (dev,staging)", true},
		{"env in (prod)", false},
		{"owner in (bob)", false},
		{"env notin (prod)", true},
		{"owner notin (bob)", true},
		{"frozen", true},
		{"!frozen", false},
		{"!owner", true},
		{"frozen=", true},
		{"team=payments,env=prod", false},
		{"team=payments,env=dev", true},
	} {
		if got := MustParseLabelSelector(tc.sel).Matches(labels); got != tc.want {
			t.Errorf("%q matches %v = %v, want %v", tc.sel, labels, got, tc.want)
		}
	}
	if (LabelSelector{}).Matches(labels) {
		t.Error("a selector without requirements matched: it must match nothing")
	}
}

func TestLabelSelector_Refines(t *testing.T) {
	parent := MustParseLabelSelector("team=payments,env in (dev,staging)")
	for _, tc := range []struct {
		child string
		want  bool
	}{
		{"team=payments,env in (staging,dev)", true},
		{"env in (dev,staging),team=payments,tier=web", true},
		{"team=payments", false},
		{"team=payments,env in (dev)", false}, // compared as written
		{"team=search,env in (dev,staging)", false},
	} {
		if got := MustParseLabelSelector(tc.child).Refines(parent); got != tc.want {
			t.Errorf("%q refines %q = %v, want %v", tc.child, parent, got, tc.want)
		}
	}
}

// FuzzParseLabelSelector checks that the parser never panics, that what it
// accepts prints as a canonical text that parses to the same selector, and
// that it stays within its limits.
func FuzzParseLabelSelector(f *testing.F) {
	for _, s := range []string{"team=payments", "a!=b,c in (d,e)", "!x,y", "k notin (v)", "a==b", "(", "a in ((b))", "x/y=z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseLabelSelector(in)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("ParseLabelSelector(%q) = %v, want %s", in, err, EINVALID)
			}
			return
		}
		if n := len(s.Requirements); n == 0 || n > MaxSelectorRequirements {
			t.Fatalf("ParseLabelSelector(%q) has %d requirements", in, n)
		}
		again, err := ParseLabelSelector(s.String())
		if err != nil || again.String() != s.String() {
			t.Fatalf("canonical %q of %q does not parse to itself: %q, %v", s, in, again, err)
		}
		if !s.Refines(again) || !again.Refines(s) {
			t.Fatalf("%q and its canonical form do not refine each other", in)
		}
	})
}
