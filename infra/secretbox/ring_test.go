package secretbox_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/infra/secretbox"
)

// ringOf returns a ring of the key texts, one a line.
func ringOf(tb testing.TB, keys ...string) *secretbox.Ring {
	tb.Helper()
	r, err := secretbox.ParseRing(strings.Join(keys, "\n"))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// keyID returns the ID of the key text.
func keyID(tb testing.TB, key string) string {
	tb.Helper()
	return ringOf(tb, key).SealingKeyID()
}

func TestParseRing(t *testing.T) {
	a, b := secretbox.NewKey(), secretbox.NewKey()
	t.Run("OK", func(t *testing.T) {
		text := "# rotated 2026-12-07: new first\n\n  " + b + "  # new\n" + a + "\n# old above\n" + b + "\n"
		r, err := secretbox.ParseRing(text)
		if err != nil {
			t.Fatal(err)
		}
		ids := r.KeyIDs()
		if len(ids) != 2 || ids[0] != keyID(t, b) || ids[1] != keyID(t, a) || r.SealingKeyID() != ids[0] {
			t.Errorf("KeyIDs = %q, sealing %s; want b then a, b sealing, each once", ids, r.SealingKeyID())
		}
	})
	for _, tt := range []struct{ name, text, want string }{
		{"ErrEmpty", "", "no key"},
		{"ErrOnlyComments", "# nothing\n\n", "no key"},
		{"ErrBadLine", a + "\nnot-a-key!\n", "line 2"},
		{"ErrShortKey", a + "\n\nc2hvcnQ=", "line 3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := secretbox.ParseRing(tt.text)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseRing = %v, want an error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), a) || strings.Contains(err.Error(), "not-a-key") {
				t.Errorf("the error %q shows a key", err)
			}
		})
	}
}

// The first key seals; every key opens the values sealed under it, with
// exactly that key; a key the ring lacks is ErrUnknownKey.
func TestRing_SealOpen(t *testing.T) {
	a, b, c := secretbox.NewKey(), secretbox.NewKey(), secretbox.NewKey()
	old, next := ringOf(t, a), ringOf(t, b, a)
	ad, value := []byte("ad"), []byte("value")
	underA, err := old.Seal(value, ad)
	if err != nil {
		t.Fatal(err)
	}
	underB, err := next.Seal(value, ad)
	if err != nil {
		t.Fatal(err)
	}
	if got := secretbox.SealedKeyID(underB); got != keyID(t, b) {
		t.Errorf("the ring [b a] sealed under %s, want b's %s", got, keyID(t, b))
	}
	for name, sealed := range map[string][]byte{"a": underA, "b": underB} {
		if got, err := next.Open(sealed, ad); err != nil || !bytes.Equal(got, value) {
			t.Errorf("[b a] opens the value under %s: %q, %v", name, got, err)
		}
	}
	if _, err := next.Open(underA, []byte("other")); !errors.Is(err, secretbox.ErrOpen) || errors.Is(err, secretbox.ErrUnknownKey) {
		t.Errorf("other associated data: %v, want ErrOpen (not an unknown key)", err)
	}
	_, err = ringOf(t, c).Open(underB, ad)
	if !errors.Is(err, secretbox.ErrUnknownKey) || !errors.Is(err, secretbox.ErrOpen) || !strings.Contains(err.Error(), keyID(t, b)) {
		t.Errorf("a ring without the key: %v, want ErrUnknownKey naming key b", err)
	}
	if got := secretbox.SealedKeyID([]byte("short")); got != "" {
		t.Errorf("SealedKeyID of no envelope = %q", got)
	}
	if with := ringOf(t, c).With(next); !equal(with.KeyIDs(), keyID(t, c), keyID(t, b), keyID(t, a)) {
		t.Errorf("[c].With([b a]) = %q, want c b a", with.KeyIDs())
	}
}

func equal(got []string, want ...string) bool {
	return strings.Join(got, " ") == strings.Join(want, " ")
}

// FuzzParseRing feeds ParseRing arbitrary text: it never panics, and a
// ring it returns seals and opens.
func FuzzParseRing(f *testing.F) {
	f.Add(secretbox.NewKey() + "\n# c\n" + secretbox.NewKey())
	f.Add("#\n\n")
	f.Fuzz(func(t *testing.T, text string) {
		r, err := secretbox.ParseRing(text)
		if err != nil {
			return
		}
		sealed, err := r.Seal([]byte("v"), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := r.Open(sealed, nil); err != nil || string(got) != "v" {
			t.Fatalf("Open = %q, %v", got, err)
		}
	})
}

// What is no envelope fails as such, not as a value under an unknown key
// (which would make a KeyFile read its file again).
func TestRing_OpenNoEnvelope(t *testing.T) {
	r := ringOf(t, secretbox.NewKey())
	sealed, err := r.Seal([]byte("v"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sealed[0] = 9
	for _, bad := range [][]byte{nil, []byte("short"), sealed} {
		if _, err := r.Open(bad, nil); !errors.Is(err, secretbox.ErrOpen) || errors.Is(err, secretbox.ErrUnknownKey) {
			t.Errorf("Open(%x) = %v, want ErrOpen, not ErrUnknownKey", bad, err)
		}
	}
}
