package secretbox

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/rdev-hq/rdev/domain"
)

// ErrUnknownKey is wrapped (with ErrOpen) by Ring.Open's error for a value
// sealed under a key the ring does not hold: the one failure that reading
// a changed key file may cure.
var ErrUnknownKey = fmt.Errorf("%w: sealed under a key not held", ErrOpen)

// Ring is a keyring: one or more key-encryption keys, the first of which
// seals and every one of which opens. A sealed value names its key (the
// envelope's KEK id), so opening tries exactly that key. A Ring does not
// change once made.
type Ring struct {
	boxes []*Box // boxes[0] seals
	byID  map[[idSize]byte]*Box
}

var (
	_ domain.SecretSealer   = (*Ring)(nil)
	_ domain.SecretKeyNamer = (*Ring)(nil)
)

// NewRing returns a ring of keys, each of 32 bytes, the first sealing. A
// key given twice is held once, where it first appears.
func NewRing(keys ...[]byte) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("secrets key: none given")
	}
	r := &Ring{byID: make(map[[idSize]byte]*Box, len(keys))}
	for _, key := range keys {
		b, err := New(key)
		if err != nil {
			return nil, err
		}
		if _, dup := r.byID[b.id]; dup {
			continue
		}
		r.byID[b.id] = b
		r.boxes = append(r.boxes, b)
	}
	return r, nil
}

// ParseRing decodes a keyring written one key a line (each as ParseKey
// reads it), the first line's key sealing; blank lines and text from a
// `#` on are ignored (base64 has no `#`). Its errors name the line, never
// a key.
func ParseRing(text string) (*Ring, error) {
	var keys [][]byte
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, err := ParseKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	if len(keys) == 0 {
		return nil, errors.New("secrets key: no key, only blank lines or comments (openssl rand -base64 32 makes one)")
	}
	return NewRing(keys...)
}

// ReadRingFile reads a keyring from path, as ParseRing decodes it.
func ReadRingFile(path string) (*Ring, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the operator names the key file.
	if err != nil {
		return nil, fmt.Errorf("secrets key file: %w", err)
	}
	r, err := ParseRing(string(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// With returns a ring of r's keys followed by those of other that r lacks:
// it seals as r does and opens what either opens.
func (r *Ring) With(other *Ring) *Ring {
	out := &Ring{byID: make(map[[idSize]byte]*Box, len(r.boxes)+len(other.boxes))}
	for _, b := range append(append([]*Box{}, r.boxes...), other.boxes...) {
		if _, dup := out.byID[b.id]; !dup {
			out.byID[b.id] = b
			out.boxes = append(out.boxes, b)
		}
	}
	return out
}

// Seal seals plaintext under the ring's first key, bound to ad.
func (r *Ring) Seal(plaintext, ad []byte) ([]byte, error) {
	return r.boxes[0].Seal(plaintext, ad)
}

// Open returns the plaintext of sealed, opened under the key its envelope
// names. It fails as Box.Open does, and with an error wrapping
// ErrUnknownKey if the ring does not hold that key.
func (r *Ring) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead || sealed[0] != version1 {
		return r.boxes[0].Open(sealed, ad) // says why it is no envelope
	}
	var id [idSize]byte
	copy(id[:], sealed[1:headSize])
	b, ok := r.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: key %x, and the keys held are %s", ErrUnknownKey, id, strings.Join(r.KeyIDs(), ", "))
	}
	return b.Open(sealed, ad)
}

// SealingKeyID returns the ID of the key that seals: the first.
func (r *Ring) SealingKeyID() string { return r.boxes[0].KeyID() }

// KeyIDs returns the IDs of the ring's keys, the sealing one first.
func (r *Ring) KeyIDs() []string {
	ids := make([]string, len(r.boxes))
	for i, b := range r.boxes {
		ids[i] = b.KeyID()
	}
	return ids
}

// SealedKeyID returns the ID of the key that sealed sealed, as its
// envelope names it, or "" if sealed is no envelope.
func (r *Ring) SealedKeyID(sealed []byte) string { return SealedKeyID(sealed) }

// SealedKeyID returns the ID of the key that sealed sealed, as its
// envelope names it, or "" if sealed is no envelope of a known version.
func SealedKeyID(sealed []byte) string {
	if len(sealed) < Overhead || sealed[0] != version1 {
		return ""
	}
	return hex.EncodeToString(sealed[1:headSize])
}

// Ring returns r itself, so that a Ring serves where a KeyFile does.
func (r *Ring) Ring() *Ring { return r }
