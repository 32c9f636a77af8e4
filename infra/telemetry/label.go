package telemetry

import "sync"

// MaxOperationNames is how many distinct GraphQL operation names get their
// own label value; later names are counted as "other".
const MaxOperationNames = 200

// maxLabelLen caps one label value; longer names are counted as "other".
const maxLabelLen = 64

// maxCodes caps the distinct outcome codes (rdev's own and gqlgen's are
// about a dozen).
const maxCodes = 32

// boundedLabel hands out label values from an open set, but at most max
// distinct ones, so a client inventing names cannot grow the exposition
// without bound.
type boundedLabel struct {
	mu   sync.Mutex
	max  int
	seen map[string]struct{}
	// valid says which values may be labels at all.
	valid func(string) bool
}

func newBoundedLabel(limit int) *boundedLabel {
	return &boundedLabel{max: limit, seen: map[string]struct{}{}, valid: isName}
}

// value returns v if it is a GraphQL name (an identifier) of bounded length
// that is already known or still fits; "other" otherwise.
func (b *boundedLabel) value(v string) string {
	if !b.valid(v) {
		return "other"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.seen[v]; ok {
		return v
	}
	if len(b.seen) >= b.max {
		return "other"
	}
	b.seen[v] = struct{}{}
	return v
}

// isName reports whether s is a GraphQL name, /[_A-Za-z][_0-9A-Za-z]*/, of
// at most maxLabelLen bytes.
func isName(s string) bool {
	if s == "" || len(s) > maxLabelLen {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
