package domain

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// AuditKeyMinBytes is the shortest audit key accepted, in bytes.
const AuditKeyMinBytes = 32

// AuditKeyring holds the keys that audit entries and checkpoints are MACed
// with (HMAC-SHA-256). They live outside the database, so whoever can write
// the database but does not hold a key cannot make an entry or a checkpoint
// that verifies. The first key signs; every key verifies, so a key can be
// rotated by putting a new one first and keeping the old ones after it.
type AuditKeyring struct {
	ids  []string          // in order; ids[0] signs
	keys map[string][]byte // by ID
}

// NewAuditKeyring returns a keyring of keys, the first of which signs. It
// returns EINVALID if there are none or one is shorter than
// AuditKeyMinBytes. A key given twice counts once.
func NewAuditKeyring(keys ...[]byte) (*AuditKeyring, error) {
	if len(keys) == 0 {
		return nil, Errorf(EINVALID, "the audit keyring holds no key")
	}
	k := &AuditKeyring{keys: make(map[string][]byte, len(keys))}
	for i, key := range keys {
		if len(key) < AuditKeyMinBytes {
			return nil, Errorf(EINVALID, "audit key %d is %d bytes; it must be at least %d", i+1, len(key), AuditKeyMinBytes)
		}
		id := AuditKeyID(key)
		if _, ok := k.keys[id]; ok {
			continue
		}
		k.ids = append(k.ids, id)
		k.keys[id] = append([]byte(nil), key...)
	}
	return k, nil
}

// ParseAuditKeyring reads a keyring from text: one base64-encoded key per
// line (such as `openssl rand -base64 32` prints), the first signing; blank
// lines and lines starting with '#' are skipped. It returns EINVALID naming
// the line of a key that does not decode or is too short.
func ParseAuditKeyring(text string) (*AuditKeyring, error) {
	var keys [][]byte
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, err := base64.StdEncoding.DecodeString(line)
		if err != nil {
			return nil, Errorf(EINVALID, "line %d: not a base64-encoded key", i+1)
		}
		if len(key) < AuditKeyMinBytes {
			return nil, Errorf(EINVALID, "line %d: the key is %d bytes; it must be at least %d", i+1, len(key), AuditKeyMinBytes)
		}
		keys = append(keys, key)
	}
	return NewAuditKeyring(keys...)
}

// NewAuditKeyText returns a fresh random key as a keyring line.
func NewAuditKeyText() string {
	key := make([]byte, AuditKeyMinBytes)
	_, _ = rand.Read(key) // crypto/rand never fails on supported platforms.
	return base64.StdEncoding.EncodeToString(key)
}

// AuditKeyID names key in entries and checkpoints: the first 8 bytes of its
// SHA-256, in hex. It says which key to verify with without revealing it.
func AuditKeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// SigningKeyID returns the ID of the key that signs.
func (k *AuditKeyring) SigningKeyID() string { return k.ids[0] }

// KeyIDs returns the IDs of every key, the signing one first.
func (k *AuditKeyring) KeyIDs() []string { return append([]string(nil), k.ids...) }

// mac returns the hex HMAC-SHA-256 of msg under the key with id, and false
// if the keyring (which may be nil) does not hold it.
func (k *AuditKeyring) mac(id string, msg []byte) (string, bool) {
	if k == nil {
		return "", false
	}
	key, ok := k.keys[id]
	if !ok {
		return "", false
	}
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil)), true
}

// check reports whether mac is msg's MAC under the key with id, and whether
// the keyring holds that key at all.
func (k *AuditKeyring) check(id string, msg []byte, mac string) (ok, known bool) {
	want, known := k.mac(id, msg)
	return known && hmac.Equal([]byte(want), []byte(mac)), known
}
