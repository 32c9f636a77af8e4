package domain

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"net/netip"
	"strings"
	"time"
)

// API key token layout: "rdev_" + ID + "_" + secret + checksum. The secret is
// 26 base32 characters (130 random bits); the checksum is CRC-32 of everything
// before it, so a mistyped key is rejected before any lookup.
const (
	tokenPrefix    = "rdev_"
	secretLength   = 26
	checksumLength = 7
	// TokenLength is the length of every API key token.
	TokenLength = len(tokenPrefix) + IDLength + 1 + secretLength + checksumLength
)

// Limits on API key fields.
const (
	MaxKeyNameLength    = 100
	MaxAllowedCIDRs     = 64
	MaxKeyRateLimit     = 100_000
	MaxRotationGrace    = 30 * 24 * time.Hour
	MaxKeyScopesEntries = 32
)

// APIKeyStatus is the derived state of a key at a point in time.
type APIKeyStatus string

// The key states.
const (
	APIKeyActive  APIKeyStatus = "ACTIVE"
	APIKeyExpired APIKeyStatus = "EXPIRED"
	APIKeyRevoked APIKeyStatus = "REVOKED"
)

// APIKey is a credential. Only the SHA-256 of its secret is kept; the token is
// shown once, when the key is created or rotated.
type APIKey struct {
	ID     string
	Name   string
	Scopes Scopes
	// SecretHash is the hex SHA-256 of the current secret.
	SecretHash string
	// PreviousSecretHash still authenticates until PreviousSecretExpiresAt,
	// so a rotated key keeps working during its grace period.
	PreviousSecretHash      string
	PreviousSecretExpiresAt *time.Time
	// AllowedCIDRs, when not empty, limits the client addresses the key may
	// be used from.
	AllowedCIDRs []netip.Prefix
	// RateLimit overrides the default requests per second; 0 means default.
	RateLimit int
	// Projects limits the projects the key sees and acts on; the zero
	// scope is every project.
	Projects ProjectScope
	// CreatedBy is the ID of the key that created this one, "" for keys made
	// by an operator with `rdev keys create`.
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
	// Version counts changes to the key: the store sets 1 when it creates
	// the key and raises it with every update, so a process holding keys
	// learns which ones changed by reading versions alone (last-used
	// times do not count).
	Version int64
}

// Status returns the key's state at now.
func (k *APIKey) Status(now time.Time) APIKeyStatus {
	switch {
	case k.RevokedAt != nil:
		return APIKeyRevoked
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return APIKeyExpired
	default:
		return APIKeyActive
	}
}

// MatchesSecret reports, in constant time, whether secret is the key's current
// secret or its previous one still within its grace period.
func (k *APIKey) MatchesSecret(secret string, now time.Time) bool {
	return k.matchesHash(hashSecret(secret), now)
}

// matchesHash is MatchesSecret for the hex SHA-256 of a secret.
func (k *APIKey) matchesHash(h string, now time.Time) bool {
	ok := subtle.ConstantTimeCompare([]byte(h), []byte(k.SecretHash)) == 1
	if k.PreviousSecretHash != "" && k.PreviousSecretExpiresAt != nil && now.Before(*k.PreviousSecretExpiresAt) {
		ok = subtle.ConstantTimeCompare([]byte(h), []byte(k.PreviousSecretHash)) == 1 || ok
	}
	return ok
}

// AllowsAddr reports whether the key may be used from addr.
func (k *APIKey) AllowsAddr(addr netip.Addr) bool {
	if len(k.AllowedCIDRs) == 0 {
		return true
	}
	addr = addr.Unmap().WithZone("") // a zoned address is in no prefix
	for _, p := range k.AllowedCIDRs {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// APIKeyFilter selects keys for FindAPIKeys, sorted by ID.
type APIKeyFilter struct {
	AfterID string
	Limit   int
	// CreatedBy, when not "", keeps only the keys that key created
	// itself (its children, not their children).
	CreatedBy string
}

// APIKeyRepository stores API keys.
type APIKeyRepository interface {
	// CreateAPIKey inserts k with Version 1 (and sets k.Version) and, in
	// the same transaction, appends audit unless it is nil. It returns
	// ECONFLICT if the ID exists. When k.CreatedBy names a stored key, that
	// key is read in the same transaction, locked against RevokeAPIKeyTree,
	// and CreateAPIKey returns EUNAUTHENTICATED, storing nothing, if it has
	// been revoked: a key made by a key being revoked is either revoked with
	// it or not made at all.
	CreateAPIKey(ctx context.Context, k *APIKey, audit *AuditEntry) error
	// FindAPIKeyByID returns ENOTFOUND if there is no such key.
	FindAPIKeyByID(ctx context.Context, id string) (*APIKey, error)
	// FindAPIKeys returns keys sorted by ID.
	FindAPIKeys(ctx context.Context, f APIKeyFilter) ([]*APIKey, error)
	// UpdateAPIKey loads the key, lets update change it, and saves it with
	// its Version raised by one, in one transaction, which also appends audit unless it is nil. It returns
	// ENOTFOUND, or update's error unchanged.
	UpdateAPIKey(ctx context.Context, id string, update func(*APIKey) error, audit *AuditEntry) (*APIKey, error)
	// APIKeyVersions returns the stored Version of each key in ids that
	// exists; the others are absent from the map.
	APIKeyVersions(ctx context.Context, ids []string) (map[string]int64, error)
	// RevokeAPIKeyTree revokes the key id and, in the same transaction,
	// every key it created, directly or through the keys it created (its
	// descendants). check is called first with the key id as stored, locked;
	// if it fails, its error is returned unchanged and nothing is saved.
	// Every key of the tree not yet revoked is then saved with RevokedAt at
	// and its Version raised by one, and gets a key.revoked webhook event; a key already revoked keeps its
	// time, and its descendants are revoked all the same. The enabled
	// webhook endpoints that the keys revoked now created are disabled
	// (WebhookDisabledCreatorRevoked) before the events are queued, so
	// nothing more is sent to an endpoint on a revoked key's behalf. audit is called
	// with the key id and the descendants revoked now, parents before their
	// children, as saved, and the entries it returns (nil ones skipped) are
	// appended in the same transaction. RevokeAPIKeyTree returns the key and
	// those descendants, or ENOTFOUND if there is no key id.
	RevokeAPIKeyTree(ctx context.Context, id string, at time.Time, check func(*APIKey) error,
		audit func(root *APIKey, revoked []*APIKey) []*AuditEntry) (*APIKey, []*APIKey, error)
	// TouchAPIKeys sets last-used times, keeping the later of the stored and
	// given time. Unknown IDs are ignored.
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error
}

// newToken makes a token for a key ID and returns it with its secret.
func newToken(id string) (token, secret string) {
	var b [17]byte // 136 bits; base32 keeps the first 130.
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms.
	}
	secret = idEncoding.EncodeToString(b[:])[:secretLength]
	body := tokenPrefix + id + "_" + secret
	return body + tokenChecksum(body), secret
}

func tokenChecksum(body string) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], crc32.ChecksumIEEE([]byte(body)))
	return idEncoding.EncodeToString(b[:])
}

// ParseToken splits a token into its key ID and secret. It returns
// EUNAUTHENTICATED for a malformed token or a wrong checksum.
func ParseToken(token string) (id, secret string, err error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) != TokenLength ||
		token[len(tokenPrefix)+IDLength] != '_' {
		return "", "", Errorf(EUNAUTHENTICATED, "malformed API key: expected rdev_<id>_<secret> of %d characters", TokenLength)
	}
	id = token[len(tokenPrefix) : len(tokenPrefix)+IDLength]
	rest := token[len(tokenPrefix)+IDLength+1:]
	secret, sum := rest[:secretLength], rest[secretLength:]
	if !validID(id) || !inIDAlphabet(secret) {
		return "", "", Errorf(EUNAUTHENTICATED, "malformed API key: unexpected characters")
	}
	want := tokenChecksum(token[:len(token)-checksumLength])
	if subtle.ConstantTimeCompare([]byte(sum), []byte(want)) != 1 {
		return "", "", Errorf(EUNAUTHENTICATED, "malformed API key: checksum mismatch (is it mistyped?)")
	}
	return id, secret, nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}
