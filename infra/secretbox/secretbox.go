// Package secretbox seals rdev's secrets with AES-256-GCM (the standard
// library's) under a key-encryption key (KEK) held outside the database: a
// file, such as a mounted Kubernetes Secret, or an environment variable.
//
// Each value gets a fresh 256-bit data key; the value is sealed under the
// data key and the data key under the KEK, both bound to the caller's
// associated data (a secret's project and name), so a sealed value moved
// to another secret does not open. The envelope is
//
//	version (1 byte, 1) | KEK id (8 bytes) |
//	nonce (12) | data key sealed under the KEK (32 + 16 tag) |
//	nonce (12) | value sealed under the data key (len + 16 tag)
//
// The KEK id is an HMAC of a fixed text under the KEK: it names the key
// without revealing it, so that a value sealed under another key is told
// apart from a changed one, and so that a keyring (Ring, KeyFile: several
// keys, the first sealing) opens a value with exactly the key that sealed
// it. Rotating keys without stopping servers relies on that: see
// docs/operations.md.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rdev-hq/rdev/domain"
)

// KeySize is the size of a key-encryption key: 32 bytes (AES-256).
const KeySize = 32

const (
	version1  = 1
	idSize    = 8
	nonceSize = 12
	tagSize   = 16
	headSize  = 1 + idSize
	wrapSize  = nonceSize + KeySize + tagSize
	// Overhead is how many bytes sealing adds to a value.
	Overhead = headSize + wrapSize + nonceSize + tagSize
)

// ErrOpen is wrapped by every failure to open a sealed value.
var ErrOpen = errors.New("sealed value does not open")

// Box seals and opens values under one key-encryption key.
type Box struct {
	kek cipher.AEAD
	id  [idSize]byte
}

var _ domain.SecretSealer = (*Box)(nil)

// New returns a Box over a 32-byte key-encryption key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets key: %d bytes, want %d", len(key), KeySize)
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	b := &Box{kek: aead}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("rdev secrets key id"))
	copy(b.id[:], mac.Sum(nil))
	return b, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	return cipher.NewGCM(block)
}

// KeyID returns the key's ID, hex: 16 characters that name it without
// revealing it.
func (b *Box) KeyID() string { return hex.EncodeToString(b.id[:]) }

// Seal returns plaintext sealed under a fresh data key, itself sealed under
// the key-encryption key, both bound to ad.
func (b *Box) Seal(plaintext, ad []byte) ([]byte, error) {
	dek := make([]byte, KeySize)
	if _, err := rand.Read(dek); err != nil {
		return nil, err
	}
	inner, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, Overhead+len(plaintext))
	out = append(out, version1)
	out = append(out, b.id[:]...)
	header := out[:headSize:headSize]
	aad := withHeader(header, ad)
	out, err = sealTo(out, b.kek, dek, aad)
	if err != nil {
		return nil, err
	}
	return sealTo(out, inner, plaintext, aad)
}

// sealTo appends a fresh nonce and plaintext sealed with it to out.
func sealTo(out []byte, aead cipher.AEAD, plaintext, ad []byte) ([]byte, error) {
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, ad), nil
}

// withHeader binds the associated data to the envelope's header, so that
// neither the version nor the key ID can be changed unnoticed.
func withHeader(header, ad []byte) []byte {
	return append(append(append([]byte{}, header...), 0), ad...)
}

// Open returns the plaintext of sealed. It returns an error wrapping
// ErrOpen, and no plaintext, if sealed is malformed, was sealed under
// another key (the error names both key IDs), or was changed or bound to
// other associated data.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrOpen, len(sealed))
	}
	if sealed[0] != version1 {
		return nil, fmt.Errorf("%w: unknown envelope version %d", ErrOpen, sealed[0])
	}
	if id := sealed[1:headSize]; !hmac.Equal(id, b.id[:]) {
		return nil, fmt.Errorf("%w: sealed under key %x, and this key is %s", ErrOpen, id, b.KeyID())
	}
	aad := withHeader(sealed[:headSize], ad)
	wrap := sealed[headSize : headSize+wrapSize]
	dek, err := b.kek.Open(nil, wrap[:nonceSize], wrap[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: changed, or bound to another secret", ErrOpen)
	}
	inner, err := newGCM(dek)
	if err != nil {
		return nil, err
	}
	body := sealed[headSize+wrapSize:]
	plaintext, err := inner.Open(nil, body[:nonceSize], body[nonceSize:], aad)
	if err != nil {
		return nil, fmt.Errorf("%w: changed, or bound to another secret", ErrOpen)
	}
	return plaintext, nil
}

// ParseKey decodes a key-encryption key written as base64 (standard or URL
// alphabet, padded or not), as NewKey writes it; surrounding white space is
// ignored. The key itself never appears in its errors.
func ParseKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(text); err == nil {
			if len(key) != KeySize {
				return nil, fmt.Errorf("secrets key: %d bytes once decoded, want %d (openssl rand -base64 32 makes one)", len(key), KeySize)
			}
			return key, nil
		}
	}
	return nil, errors.New("secrets key: not base64 (openssl rand -base64 32 makes one)")
}

// NewKey returns a fresh key-encryption key as base64 text.
func NewKey() string {
	key := make([]byte, KeySize)
	_, _ = rand.Read(key) // crypto/rand never fails on supported platforms.
	return base64.StdEncoding.EncodeToString(key)
}

// CreateKeyFile writes a fresh key to path (mode 0600, in a directory
// made 0700 if it is missing) unless there is a file there already, and
// reports whether it wrote one. Read the file with OpenKeyFile.
func CreateKeyFile(path string) (created bool, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("secrets key file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // the path is the server's own data directory.
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("secrets key file: %w", err)
	}
	_, werr := f.WriteString(NewKey() + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("secrets key file: %w", err)
	}
	return true, nil
}
