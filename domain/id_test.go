package domain

import (
	"encoding/binary"
	"math"
	"sync"
	"testing"
	"time"
)

// isolateIDs gives a test NewID's state to itself and puts the process's
// state back when the test ends, so the IDs made after the test still sort
// after every ID made before it (those the test made are thrown away).
// Tests in this package do not run in parallel, so nothing else makes IDs
// meanwhile.
func isolateIDs(tb testing.TB) {
	tb.Helper()
	ids.Lock()
	ms, rnd := ids.ms, ids.rand
	ids.Unlock()
	tb.Cleanup(func() {
		ids.Lock()
		ids.ms, ids.rand = ms, rnd
		ids.Unlock()
	})
}

// freshIDs makes NewID behave as in a process that made no ID yet.
func freshIDs() {
	ids.Lock()
	ids.ms, ids.rand = 0, 0
	ids.Unlock()
}

// decodeID returns the milliseconds and the low 32 bits an ID encodes.
func decodeID(tb testing.TB, id string) (ms int64, low uint32) {
	tb.Helper()
	b, err := idEncoding.DecodeString(id)
	if err != nil || len(b) != 10 {
		tb.Fatalf("decoding ID %q: %d bytes, %v", id, len(b), err)
	}
	var m [8]byte
	copy(m[2:], b[:6])
	return int64(binary.BigEndian.Uint64(m[:])), binary.BigEndian.Uint32(b[6:])
}

func TestNewID(t *testing.T) {
	isolateIDs(t)
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
		// Each time is later than the one before, so each is encoded as
		// it is — up to the last millisecond 48 bits can hold.
		freshIDs()
		for _, at := range []time.Time{
			time.UnixMilli(0), t0, t0.Add(999 * time.Microsecond), t0.Add(time.Hour),
			time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), time.UnixMilli(1<<48 - 1),
		} {
			if got, _ := decodeID(t, NewID(at)); got != at.UnixMilli() {
				t.Errorf("NewID(%v) encodes %d ms, want %d", at, got, at.UnixMilli())
			}
		}
	})

	t.Run("MonotonicWithinProcess", func(t *testing.T) {
		// A time not later than the last ID's keeps that ID's millisecond
		// and counts up in the low bits, so the IDs still increase.
		freshIDs()
		prev := NewID(t0)
		prevMS, prevLow := decodeID(t, prev)
		if prevMS != t0.UnixMilli() {
			t.Fatalf("first ID encodes %d ms, want %d", prevMS, t0.UnixMilli())
		}
		for _, at := range []time.Time{
			t0, t0, t0.Add(500 * time.Microsecond), t0.Add(-time.Millisecond), t0.Add(-time.Hour),
			time.UnixMilli(0), t0.Add(2 * time.Millisecond), t0.Add(time.Millisecond), t0.Add(2 * time.Millisecond),
		} {
			id := NewID(at)
			ms, low := decodeID(t, id)
			if id <= prev {
				t.Fatalf("NewID(%v) = %q does not sort after the ID before it, %q", at, id, prev)
			}
			switch {
			case at.UnixMilli() > prevMS:
				if ms != at.UnixMilli() {
					t.Errorf("NewID(%v), later than the last ID, encodes %d ms, want %d", at, ms, at.UnixMilli())
				}
			case ms != prevMS || low != prevLow+1:
				t.Errorf("NewID(%v), not later than the last ID (%d ms, low bits %d), encodes %d ms, low bits %d; want the same millisecond, counted up by one",
					at, prevMS, prevLow, ms, low)
			}
			prev, prevMS, prevLow = id, ms, low
		}
	})

	t.Run("CounterUsedUp", func(t *testing.T) {
		// Once a millisecond's counter is used up, the next ID moves on
		// to the next millisecond, even if the clock has not.
		freshIDs()
		NewID(t0)
		ids.Lock()
		ids.rand = math.MaxUint32 - 1
		ids.Unlock()
		last := NewID(t0)
		if ms, low := decodeID(t, last); ms != t0.UnixMilli() || low != math.MaxUint32 {
			t.Fatalf("last ID of the millisecond encodes %d ms, low bits %d; want %d, %d", ms, low, t0.UnixMilli(), uint32(math.MaxUint32))
		}
		for _, at := range []time.Time{t0, t0.Add(-time.Second)} {
			id := NewID(at)
			if ms, _ := decodeID(t, id); ms != t0.UnixMilli()+1 || id <= last {
				t.Errorf("NewID(%v) after the counter was used up = %q (%d ms), want one after %q in ms %d", at, id, ms, last, t0.UnixMilli()+1)
			}
			last = id
		}
	})

	t.Run("SortsByTime", func(t *testing.T) {
		// Every millisecond step must sort after the previous one, whatever
		// the random low bits are.
		freshIDs()
		for i := range 10_000 {
			at := t0.Add(time.Duration(i) * time.Millisecond)
			a, b := NewID(at), NewID(at.Add(time.Millisecond))
			if a >= b {
				t.Fatalf("NewID(%v) = %q does not sort before NewID(+1ms) = %q", at, a, b)
			}
		}
		freshIDs()
		for _, at := range []time.Time{time.UnixMilli(0), time.UnixMilli(1<<48 - 2)} {
			if a, b := NewID(at), NewID(at.Add(time.Millisecond)); a >= b {
				t.Errorf("NewID(%v) = %q does not sort before NewID(+1ms) = %q", at, a, b)
			}
		}
	})

	t.Run("Unique", func(t *testing.T) {
		// IDs of one millisecond differ by their counter, so even 100,000
		// made at the same time never repeat.
		freshIDs()
		seen := make(map[string]bool, 110_000)
		for i := range 110_000 {
			at := t0
			if i >= 100_000 {
				at = t0.Add(time.Duration(i/10) * time.Millisecond)
			}
			id := NewID(at)
			if seen[id] {
				t.Fatalf("NewID repeated %q after %d IDs", id, i)
			}
			seen[id] = true
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		// IDs made at once from many goroutines are all different, and
		// each goroutine's increase.
		freshIDs()
		const goroutines, each = 8, 2000
		var mu sync.Mutex
		seen := make(map[string]bool, goroutines*each)
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				made := make([]string, each)
				for i := range made {
					made[i] = NewID(t0)
				}
				mu.Lock()
				defer mu.Unlock()
				prev := ""
				for _, id := range made {
					if id <= prev {
						t.Errorf("NewID = %q after %q in one goroutine", id, prev)
					}
					if seen[id] {
						t.Errorf("NewID repeated %q", id)
					}
					seen[id], prev = true, id
				}
			})
		}
		wg.Wait()
		if len(seen) != goroutines*each {
			t.Errorf("%d different IDs, want %d", len(seen), goroutines*each)
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
