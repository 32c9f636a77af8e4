package domain

import (
	"slices"
	"strconv"
	"strings"
)

// Limits of a label selector.
const (
	// MaxSelectorLength bounds a selector's text, in bytes.
	MaxSelectorLength = 1024
	// MaxSelectorRequirements bounds the requirements of one selector.
	MaxSelectorRequirements = 16
	// MaxSelectorValues bounds the values of one in or notin requirement.
	MaxSelectorValues = 32
)

// SelectorOp is how a label requirement tests a label.
type SelectorOp string

// The operators of a label requirement, in Kubernetes' selector syntax.
const (
	// SelectorEquals: "k=v", the label k is there and is v.
	SelectorEquals SelectorOp = "="
	// SelectorNotEquals: "k!=v", the label k is not there or is not v.
	SelectorNotEquals SelectorOp = "!="
	// SelectorIn: "k in (a,b)", the label k is there and is one of the values.
	SelectorIn SelectorOp = "in"
	// SelectorNotIn: "k notin (a,b)", the label k is not there or is none of
	// the values.
	SelectorNotIn SelectorOp = "notin"
	// SelectorExists: "k", the label k is there, whatever its value.
	SelectorExists SelectorOp = "exists"
	// SelectorNotExists: "!k", the label k is not there.
	SelectorNotExists SelectorOp = "!"
)

// LabelRequirement is one test of a label selector.
type LabelRequirement struct {
	Key string
	Op  SelectorOp
	// Values holds the one value of = and !=, the sorted values of in and
	// notin, and nothing for the existence tests.
	Values []string
}

// String returns the requirement in selector syntax.
func (r LabelRequirement) String() string {
	switch r.Op {
	case SelectorEquals, SelectorNotEquals:
		return r.Key + string(r.Op) + r.Values[0]
	case SelectorIn, SelectorNotIn:
		return r.Key + " " + string(r.Op) + " (" + strings.Join(r.Values, ",") + ")"
	case SelectorNotExists:
		return "!" + r.Key
	case SelectorExists:
	}
	return r.Key
}

// Matches reports whether labels pass the requirement.
func (r LabelRequirement) Matches(labels map[string]string) bool {
	v, ok := labels[r.Key]
	switch r.Op {
	case SelectorEquals:
		return ok && v == r.Values[0]
	case SelectorNotEquals:
		return !ok || v != r.Values[0]
	case SelectorIn:
		return ok && slices.Contains(r.Values, v)
	case SelectorNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case SelectorNotExists:
		return !ok
	case SelectorExists:
	}
	return ok
}

// LabelSelector selects projects by their labels: a project matches when
// its labels pass every requirement. ParseLabelSelector keeps the
// requirements in a canonical order, so two selectors that say the same
// thing in the same words have the same String.
type LabelSelector struct {
	Requirements []LabelRequirement
}

// String returns the selector in canonical selector syntax, the form it is
// stored and shown in.
func (s LabelSelector) String() string {
	parts := make([]string, len(s.Requirements))
	for i, r := range s.Requirements {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}

// Matches reports whether labels pass every requirement.
func (s LabelSelector) Matches(labels map[string]string) bool {
	for _, r := range s.Requirements {
		if !r.Matches(labels) {
			return false
		}
	}
	return len(s.Requirements) > 0
}

// Refines reports whether s has every requirement of parent (and maybe
// more), so it never matches a project parent does not. It compares the
// requirements as written: "team in (a)" does not refine "team in (a,b)".
func (s LabelSelector) Refines(parent LabelSelector) bool {
	for _, p := range parent.Requirements {
		if !slices.ContainsFunc(s.Requirements, func(r LabelRequirement) bool { return r.String() == p.String() }) {
			return false
		}
	}
	return true
}

// ParseLabelSelector parses Kubernetes' equality- and set-based selector
// syntax: requirements separated by commas, each one of "k=v", "k!=v",
// "k in (a,b)", "k notin (a,b)", "k" or "!k". Keys and values follow
// Kubernetes' label syntax. It returns EINVALID, naming the requirement at
// fault, for anything else, including an empty selector (which would select
// everything) and "==".
func ParseLabelSelector(text string) (LabelSelector, error) {
	if len(text) > MaxSelectorLength {
		return LabelSelector{}, Errorf(EINVALID, "selector: at most %d bytes", MaxSelectorLength)
	}
	parts, err := splitSelector(text)
	if err != nil {
		return LabelSelector{}, err
	}
	if len(parts) > MaxSelectorRequirements {
		return LabelSelector{}, Errorf(EINVALID, "selector %q: at most %d requirements", Clip(text), MaxSelectorRequirements)
	}
	var s LabelSelector
	for _, part := range parts {
		r, err := parseRequirement(strings.TrimSpace(part))
		if err != nil {
			return LabelSelector{}, err
		}
		s.Requirements = append(s.Requirements, r)
	}
	slices.SortFunc(s.Requirements, func(a, b LabelRequirement) int { return strings.Compare(a.String(), b.String()) })
	s.Requirements = slices.CompactFunc(s.Requirements, func(a, b LabelRequirement) bool { return a.String() == b.String() })
	return s, nil
}

// MustParseLabelSelector is ParseLabelSelector for selectors known to be
// valid, such as those read back from storage; it panics on a bad one.
func MustParseLabelSelector(text string) LabelSelector {
	s, err := ParseLabelSelector(text)
	if err != nil {
		panic(err)
	}
	return s
}

// splitSelector splits text at the commas outside parentheses.
func splitSelector(text string) ([]string, error) {
	if strings.TrimSpace(text) == "" {
		return nil, Errorf(EINVALID, "selector: must not be empty (an empty selector would select every project)")
	}
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case '(':
			if depth++; depth > 1 {
				return nil, Errorf(EINVALID, "selector %q: nested parentheses", Clip(text))
			}
		case ')':
			if depth--; depth < 0 {
				return nil, Errorf(EINVALID, "selector %q: ')' without '('", Clip(text))
			}
		case ',':
			if depth == 0 {
				parts = append(parts, text[start:i])
				start = i + 1
			}
		}
	}
	if depth != 0 {
		return nil, Errorf(EINVALID, "selector %q: '(' without ')'", Clip(text))
	}
	return append(parts, text[start:]), nil
}

// parseRequirement parses one requirement, already trimmed.
func parseRequirement(part string) (LabelRequirement, error) {
	bad := func(why string) (LabelRequirement, error) {
		return LabelRequirement{}, Errorf(EINVALID, "selector requirement %q: %s", Clip(part), why)
	}
	if part == "" {
		return bad("empty (two commas in a row, or a comma at an end)")
	}
	if key, ok := strings.CutPrefix(part, "!"); ok {
		if !validLabelKey(key) {
			return bad("not a label key after '!'")
		}
		return LabelRequirement{Key: key, Op: SelectorNotExists}, nil
	}
	if i := strings.IndexAny(part, "=!"); i >= 0 {
		key, op, value := part[:i], SelectorEquals, part[i+1:]
		if part[i] == '!' {
			if !strings.HasPrefix(part[i:], "!=") {
				return bad("'!' must start the requirement or be followed by '='")
			}
			op, value = SelectorNotEquals, part[i+2:]
		}
		if strings.HasPrefix(value, "=") {
			return bad("use '=' rather than '=='")
		}
		if !validLabelKey(key) {
			return bad("not a label key before " + string(op))
		}
		if !validLabelValue(value) {
			return bad("not a label value after " + string(op) + " (at most 63 letters, digits, '-', '_' or '.', beginning and ending with a letter or digit)")
		}
		return LabelRequirement{Key: key, Op: op, Values: []string{value}}, nil
	}
	fields := strings.Fields(part)
	if len(fields) == 1 {
		if !validLabelKey(part) {
			return bad("not a label key, nor key=value, key!=value, key in (…), key notin (…) or !key")
		}
		return LabelRequirement{Key: part, Op: SelectorExists}, nil
	}
	key, rest := fields[0], strings.TrimSpace(strings.TrimPrefix(part, fields[0]))
	var op SelectorOp
	switch {
	case strings.HasPrefix(rest, "notin"):
		op, rest = SelectorNotIn, strings.TrimSpace(rest[len("notin"):])
	case strings.HasPrefix(rest, "in"):
		op, rest = SelectorIn, strings.TrimSpace(rest[len("in"):])
	default:
		return bad("expected in or notin after the key")
	}
	if !validLabelKey(key) {
		return bad("not a label key before " + string(op))
	}
	inner, opened := strings.CutPrefix(rest, "(")
	inner, closed := strings.CutSuffix(inner, ")")
	if !opened || !closed {
		return bad("the values of " + string(op) + " go in parentheses: key " + string(op) + " (a,b)")
	}
	var values []string
	for v := range strings.SplitSeq(inner, ",") {
		v = strings.TrimSpace(v)
		if v == "" || !validLabelValue(v) {
			return bad("each value of " + string(op) + " must be a non-empty label value")
		}
		values = append(values, v)
	}
	if len(values) > MaxSelectorValues {
		return bad("at most " + strconv.Itoa(MaxSelectorValues) + " values")
	}
	slices.Sort(values)
	return LabelRequirement{Key: key, Op: op, Values: slices.Compact(values)}, nil
}

// validLabelValue reports whether v is a Kubernetes label value (empty, or
// at most 63 characters of the label-name alphabet).
func validLabelValue(v string) bool {
	return v == "" || len(v) <= 63 && labelNamePattern.MatchString(v)
}
