package domain

import (
	"encoding/binary"
	"testing"
	"time"
)

func TestNewID(t *testing.T) {
	t0 := newClock().Now()

	t.Run("Shape", func(t *testing.T) {
		for range 1000 {
			id := NewID(t0)
			if len(id) != IDLength || !inIDAlphabet(id) || !validID(id) {
				t.Fatalf("NewID = %q, want %d characters of %q", id, IDLength, idAlphabet)
			}
		}
	})

	t.Run("EncodesMilliseconds", func(t *testing.T) {
		for _, at := range []time.Time{
			t0, time.UnixMilli(0), time.UnixMilli(1<<48 - 1), t0.Add(999 * time.Microsecond),
		} {
			b, err := idEncoding.DecodeString(NewID(at))
			if err != nil {
				t.Fatal(err)
			}
			var ms [8]byte
			copy(ms[2:], b[:6])
			if got := binary.BigEndian.Uint64(ms[:]); got != uint64(at.UnixMilli()) {
				t.Errorf("NewID(%v) encodes %d ms, want %d", at, got, at.UnixMilli())
			}
		}
	})

	t.Run("SortsByTime", func(t *testing.T) {
		// Every millisecond step must sort after the previous one, whatever
		// the random suffixes are.
		for i := range 10_000 {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			a, b := NewID(at), NewID(at.Add(time.Millisecond))
			if a >= b {
				t.Fatalf("NewID(%v) = %q does not sort before NewID(+1ms) = %q", at, a, b)
			}
		}
		for _, at := range []time.Time{time.UnixMilli(0), time.UnixMilli(1<<48 - 2)} {
			if a, b := NewID(at), NewID(at.Add(time.Millisecond)); a >= b {
				t.Errorf("NewID(%v) = %q does not sort before NewID(+1ms) = %q", at, a, b)
			}
		}
	})

	t.Run("Unique", func(t *testing.T) {
		// IDs in the same millisecond differ only in 32 random bits, so
		// 10,000 IDs in one millisecond would collide about 1% of the time
		// (birthday bound). Ten per millisecond keeps a spurious failure
		// below one in 100,000 runs while still exercising the random part.
		seen := make(map[string]bool, 10_000)
		for i := range 10_000 {
			id := NewID(t0.Add(time.Duration(i/10) * time.Millisecond))
			if seen[id] {
				t.Fatalf("NewID repeated %q after %d IDs", id, i)
			}
			seen[id] = true
		}
	})
}

func TestValidID(t *testing.T) {
	for _, tt := range []struct {
		id   string
		want bool
	}{
		{NewID(newClock().Now()), true},
		{"0123456789abcdef", true},
		{"vvvvvvvvvvvvvvvv", true},
		{"", false},
		{"0123456789abcde", false},
		{"0123456789abcdef0", false},
		{"0123456789ABCDEF", false},
		{"0123456789abcdew", false},
		{"0123456789abcde-", false},
		{"0123456789abcdé", false},
	} {
		if got := validID(tt.id); got != tt.want {
			t.Errorf("validID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}
