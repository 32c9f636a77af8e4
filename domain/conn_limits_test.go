package domain

import (
	"net/netip"
	"strings"
	"sync"
	"testing"
)

func TestConnLimits_Open(t *testing.T) {
	alice := &Caller{Key: &APIKey{ID: "alice"}, Addr: netip.MustParseAddr("10.0.0.1")}
	bob := &Caller{Key: &APIKey{ID: "bob"}, Addr: netip.MustParseAddr("10.0.0.1")}
	anon := &Caller{Addr: netip.MustParseAddr("10.0.0.1")}
	other := &Caller{Addr: netip.MustParseAddr("10.0.0.2")}

	t.Run("CapPerKey", func(t *testing.T) {
		l := NewConnLimits(2, 1, 0)
		r1 := mustOpen(t, l, alice, ConnSocket)
		mustOpen(t, l, alice, ConnSocket)
		if _, err := l.Open(alice, ConnSocket); ErrorCode(err) != ERATELIMITED {
			t.Fatalf("third socket: got %v, want %s", err, ERATELIMITED)
		}
		// Another key, and another kind, have their own counts.
		mustOpen(t, l, bob, ConnSocket)
		mustOpen(t, l, alice, ConnStream)
		r1()
		r1() // a second release changes nothing
		mustOpen(t, l, alice, ConnSocket)
		if _, err := l.Open(alice, ConnSocket); err == nil {
			t.Fatal("a double release freed two places")
		}
		if n := l.Count(ConnSocket); n != 3 {
			t.Errorf("Count(socket) = %d, want 3", n)
		}
	})

	t.Run("Subscriptions", func(t *testing.T) {
		l := NewConnLimits(1, 1, 2)
		mustOpen(t, l, alice, ConnSubscription)
		mustOpen(t, l, alice, ConnSubscription)
		_, err := l.Open(alice, ConnSubscription)
		if ErrorCode(err) != ERATELIMITED || !strings.Contains(ErrorMessage(err), "too many open subscriptions for this API key: at most 2") {
			t.Fatalf("third subscription: got %v, want %s about subscriptions", err, ERATELIMITED)
		}
		// Sockets and streams are counted apart.
		mustOpen(t, l, alice, ConnSocket)
		mustOpen(t, l, alice, ConnStream)
		if n := l.Count(ConnSubscription); n != 2 {
			t.Errorf("Count(subscription) = %d, want 2", n)
		}
	})

	t.Run("CapPerAddressWithoutKey", func(t *testing.T) {
		l := NewConnLimits(1, 1, 0)
		mustOpen(t, l, anon, ConnStream)
		if _, err := l.Open(anon, ConnStream); ErrorCode(err) != ERATELIMITED {
			t.Fatalf("second stream from one address: got %v, want %s", err, ERATELIMITED)
		}
		mustOpen(t, l, other, ConnStream)
		// A key's connections from the same address are the key's.
		mustOpen(t, l, alice, ConnStream)
	})

	t.Run("NoCap", func(t *testing.T) {
		l := NewConnLimits(0, 0, 0)
		for range 100 {
			mustOpen(t, l, alice, ConnSocket)
		}
		if n := l.Count(ConnSocket); n != 100 {
			t.Errorf("Count = %d, want 100", n)
		}
		var nilLimits *ConnLimits
		mustOpen(t, nilLimits, alice, ConnSocket)()
	})

	t.Run("Concurrent", func(t *testing.T) {
		l := NewConnLimits(5, 0, 0)
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				for range 100 {
					if release, err := l.Open(alice, ConnSocket); err == nil {
						release()
					}
				}
			})
		}
		wg.Wait()
		if n := l.Count(ConnSocket); n != 0 {
			t.Errorf("Count = %d after every release, want 0", n)
		}
	})
}

func mustOpen(t *testing.T, l *ConnLimits, c *Caller, kind ConnKind) func() {
	t.Helper()
	release, err := l.Open(c, kind)
	if err != nil {
		t.Fatalf("Open(%s, %s): %v", c.KeyID(), kind, err)
	}
	return release
}
