package secretbox_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/infra/secretbox"
)

func mustBox(tb testing.TB) *secretbox.Box {
	tb.Helper()
	key, err := secretbox.ParseKey(secretbox.NewKey())
	if err != nil {
		tb.Fatal(err)
	}
	b, err := secretbox.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestBox_SealOpen(t *testing.T) {
	b := mustBox(t)
	ad := []byte("rdev secret\x00pay\x00TOKEN")
	value := []byte("supersecretvalue")
	sealed, err := b.Seal(value, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, value) {
		t.Fatal("the sealed value holds the plaintext")
	}
	if len(sealed) != len(value)+secretbox.Overhead {
		t.Errorf("sealed %d bytes, want %d", len(sealed), len(value)+secretbox.Overhead)
	}
	again, err := b.Seal(value, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(sealed, again) {
		t.Error("sealing twice gave the same bytes: nonces or data keys are reused")
	}

	t.Run("OK", func(t *testing.T) {
		got, err := b.Open(sealed, ad)
		if err != nil || !bytes.Equal(got, value) {
			t.Fatalf("Open = %q, %v; want %q", got, err, value)
		}
	})
	t.Run("ErrTampered", func(t *testing.T) {
		for i := range sealed {
			changed := bytes.Clone(sealed)
			changed[i] ^= 0x01
			if got, err := b.Open(changed, ad); err == nil || got != nil {
				t.Fatalf("byte %d flipped: Open = %q, %v; want an error and no plaintext", i, got, err)
			} else if !errors.Is(err, secretbox.ErrOpen) {
				t.Fatalf("byte %d flipped: %v does not wrap ErrOpen", i, err)
			}
		}
		if _, err := b.Open(sealed[:len(sealed)-1], ad); err == nil {
			t.Error("a truncated value opened")
		}
		if _, err := b.Open(nil, ad); err == nil {
			t.Error("nothing opened")
		}
	})
	t.Run("ErrWrongAD", func(t *testing.T) {
		for _, other := range []string{"rdev secret\x00search\x00TOKEN", "rdev secret\x00pay\x00OTHER", ""} {
			if got, err := b.Open(sealed, []byte(other)); err == nil || got != nil {
				t.Errorf("opened under ad %q: %q, %v", other, got, err)
			}
		}
	})
	t.Run("ErrWrongKey", func(t *testing.T) {
		other := mustBox(t)
		_, err := other.Open(sealed, ad)
		if err == nil {
			t.Fatal("another key opened it")
		}
		if msg := err.Error(); !strings.Contains(msg, b.KeyID()) || !strings.Contains(msg, other.KeyID()) {
			t.Errorf("error %q names neither key", msg)
		}
	})
	t.Run("Rewrap", func(t *testing.T) {
		next := mustBox(t)
		plain, err := b.Open(sealed, ad)
		if err != nil {
			t.Fatal(err)
		}
		rewrapped, err := next.Seal(plain, ad)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := next.Open(rewrapped, ad); err != nil || !bytes.Equal(got, value) {
			t.Errorf("new key: %q, %v", got, err)
		}
		if _, err := b.Open(rewrapped, ad); err == nil {
			t.Error("the old key opens a value rewrapped under the new one")
		}
	})
}

func TestNew_ErrKeySize(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33} {
		if _, err := secretbox.New(make([]byte, n)); err == nil {
			t.Errorf("a %d-byte key was taken", n)
		}
	}
}

func TestParseKey(t *testing.T) {
	text := secretbox.NewKey()
	key, err := secretbox.ParseKey("  " + text + "\n")
	if err != nil || len(key) != secretbox.KeySize {
		t.Fatalf("ParseKey = %d bytes, %v", len(key), err)
	}
	for _, bad := range []string{"", "not base64!", "c2hvcnQ="} {
		if _, err := secretbox.ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("ParseKey's error %q shows the key", err)
		}
	}
}

func TestCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "secrets.key")
	created, err := secretbox.CreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first: created %v, %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v, want 0700", di.Mode().Perm())
	}
	ring, err := secretbox.ReadRingFile(path)
	if err != nil || len(ring.KeyIDs()) != 1 {
		t.Fatalf("the file made: %v", err)
	}
	created, err = secretbox.CreateKeyFile(path)
	if err != nil || created {
		t.Fatalf("second: created %v, %v", created, err)
	}
	if again, err := secretbox.ReadRingFile(path); err != nil || again.SealingKeyID() != ring.SealingKeyID() {
		t.Fatalf("second: the key changed (%v)", err)
	}
}

// FuzzBox_Open feeds Open arbitrary bytes: it never panics, and opens only
// what Seal made for that associated data.
func FuzzBox_Open(f *testing.F) {
	b := mustBox(f)
	sealed, err := b.Seal([]byte("value"), []byte("ad"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, []byte("ad"))
	f.Add([]byte{1}, []byte(""))
	f.Fuzz(func(t *testing.T, data, ad []byte) {
		got, err := b.Open(data, ad)
		if err == nil && (!bytes.Equal(data, sealed) || string(ad) != "ad" || string(got) != "value") {
			t.Fatalf("Open(%x, %q) = %q: opened bytes Seal did not make", data, ad, got)
		}
	})
}

func BenchmarkBox_SealOpen(b *testing.B) {
	box := mustBox(b)
	value, ad := bytes.Repeat([]byte("x"), 64), []byte("rdev secret\x00pay\x00TOKEN")
	b.ReportAllocs()
	for b.Loop() {
		sealed, err := box.Seal(value, ad)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := box.Open(sealed, ad); err != nil {
			b.Fatal(err)
		}
	}
}
