package domain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"time"
)

// Audit actions: what an entry records.
const (
	AuditCommandExecute = "command.execute"
	AuditCommandCancel  = "command.cancel"
	AuditCommandFinish  = "command.finish"
	AuditKeyCreate      = "key.create"
	AuditKeyRevoke      = "key.revoke"
	AuditKeyRotate      = "key.rotate"
	AuditKeyUpdate      = "key.update"

	AuditWebhookCreate       = "webhook.create"
	AuditWebhookUpdate       = "webhook.update"
	AuditWebhookDelete       = "webhook.delete"
	AuditWebhookRotateSecret = "webhook.rotate_secret" //nolint:gosec // an action name, not a credential
	AuditWebhookTest         = "webhook.test"
	AuditWebhookRedeliver    = "webhook.redeliver"
)

// AuditOutcome says how the audited attempt ended.
type AuditOutcome string

// The outcomes.
const (
	// AuditSuccess: the action took effect, in the entry's transaction.
	AuditSuccess AuditOutcome = "success"
	// AuditDenied: the caller was not allowed to (UNAUTHENTICATED, FORBIDDEN).
	AuditDenied AuditOutcome = "denied"
	// AuditFailed: the action was refused or failed for another reason.
	AuditFailed AuditOutcome = "failed"
)

// Audit actors that are not API keys.
const (
	// AuditActorCLI is the operator using the rdev CLI on the database.
	AuditActorCLI = "cli"
)

// AuditEntry is one record of the append-only audit log. The store assigns
// Seq, PrevHash and Hash when it appends the entry; everything else is set
// by the service that made it.
type AuditEntry struct {
	// Seq numbers entries 1, 2, 3 … without gaps, in append order.
	Seq int64
	// At is when the entry was made, in UTC with microsecond precision.
	At time.Time
	// Actor is the API key ID, AuditActorCLI, or "" when unknown.
	Actor     string
	ClientIP  string
	UserAgent string
	RequestID string
	// Action is one of the Audit* action names.
	Action string
	// Target is what the action was applied to (a command or key ID).
	Target    string
	Outcome   AuditOutcome
	ErrorCode string
	// Details are redacted facts about the action; never a secret.
	Details map[string]string
	// PrevHash is the previous entry's Hash ("" for the first entry).
	PrevHash string
	// KeyID names the audit key the entry is MACed with (AuditKeyID), ""
	// for an unkeyed entry, made before a key was configured.
	KeyID string
	// Hash is the hex HMAC-SHA-256 of AuditCanonical(PrevHash, entry) under
	// the key KeyID names, or for an unkeyed entry its hex SHA-256.
	Hash string
}

// The first field of the canonical encoding: v1 for unkeyed entries, v2 for
// keyed ones.
const (
	auditEncodingV1 = "rdev-audit-v1"
	auditEncodingV2 = "rdev-audit-v2"
)

// AuditCanonical returns the canonical encoding of e chained to prevHash,
// the bytes its Hash is the MAC (or, unkeyed, the SHA-256) of. It is a
// sequence of netstrings (decimal byte length, ':', the bytes, ','), in
// this order:
//
//	"rdev-audit-v2" and KeyID for a keyed entry, "rdev-audit-v1" for an
//	unkeyed one; prevHash, Seq (decimal), At (UTC, RFC 3339 with exactly
//	six fractional digits, e.g. 2026-12-01T09:30:00.000001Z), Actor,
//	ClientIP, UserAgent, RequestID, Action, Target, Outcome, ErrorCode,
//	the number of Details (decimal), then each detail's key and value,
//	keys in byte order.
//
// Every field is length-prefixed, so no two entries share an encoding, and
// Seq is included, so an entry moved to another position no longer matches
// its hash. e.PrevHash and e.Hash themselves are not read.
func AuditCanonical(prevHash string, e *AuditEntry) []byte {
	b := make([]byte, 0, 256)
	field := func(s string) { b = appendNetstring(b, s) }
	if e.KeyID == "" {
		field(auditEncodingV1)
	} else {
		field(auditEncodingV2)
		field(e.KeyID)
	}
	field(prevHash)
	field(strconv.FormatInt(e.Seq, 10))
	field(AuditTime(e.At))
	for _, s := range []string{e.Actor, e.ClientIP, e.UserAgent, e.RequestID, e.Action, e.Target, string(e.Outcome), e.ErrorCode} {
		field(s)
	}
	field(strconv.Itoa(len(e.Details)))
	for _, k := range slices.Sorted(maps.Keys(e.Details)) {
		field(k)
		field(e.Details[k])
	}
	return b
}

// appendNetstring appends s to b as a netstring.
func appendNetstring(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, ',')
}

// AuditTime formats t as the canonical encoding does.
func AuditTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format("2006-01-02T15:04:05.000000Z")
}

// AuditHash returns the hex SHA-256 of AuditCanonical(prevHash, e), the
// Hash of an unkeyed entry.
func AuditHash(prevHash string, e *AuditEntry) string {
	sum := sha256.Sum256(AuditCanonical(prevHash, e))
	return hex.EncodeToString(sum[:])
}

// Seal numbers e as the entry after one with seq prevSeq and hash prevHash,
// and sets its PrevHash and its Hash, unkeyed. Stores call it (or SealWith)
// while they hold the chain's lock.
func (e *AuditEntry) Seal(prevSeq int64, prevHash string) {
	e.SealWith(nil, prevSeq, prevHash)
}

// SealWith seals e as Seal does, MACed with keys' signing key; a nil
// keyring seals it unkeyed.
func (e *AuditEntry) SealWith(keys *AuditKeyring, prevSeq int64, prevHash string) {
	e.Seq, e.PrevHash = prevSeq+1, prevHash
	e.At = e.At.UTC().Truncate(time.Microsecond)
	if keys == nil {
		e.KeyID = ""
		e.Hash = AuditHash(prevHash, e)
		return
	}
	e.KeyID = keys.SigningKeyID()
	e.Hash, _ = keys.mac(e.KeyID, AuditCanonical(prevHash, e))
}

// AuditFilter selects entries for FindAuditEntries, newest first.
type AuditFilter struct {
	Actor  string
	Action string
	Target string
	// Since and Until bound At (inclusive, exclusive); zero means open.
	Since, Until time.Time
	// BeforeSeq pages backwards: only entries with a lower Seq (0: none).
	BeforeSeq int64
	Limit     int
}

// AuditHead is the last entry of the chain as the store's chain head records
// it, so an entry removed from the end is noticed too.
type AuditHead struct {
	Seq  int64
	Hash string
}

// AuditRepository stores the audit log. Repository methods that change state
// (CreateCommand, RequestCancel, FinishCommand, CreateAPIKey, UpdateAPIKey,
// ExpireLeases) take their entries with them and append them in their own
// transaction; this port appends entries that stand alone and reads the log.
type AuditRepository interface {
	// AppendAudit seals and appends entries in one transaction, in order,
	// serialized with every other append to the same database.
	AppendAudit(ctx context.Context, entries ...*AuditEntry) error
	// FindAuditEntries returns matching entries, newest first.
	FindAuditEntries(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
	// ReadAuditChain returns up to limit entries with Seq > afterSeq in Seq
	// order, as stored (nothing is checked).
	ReadAuditChain(ctx context.Context, afterSeq int64, limit int) ([]*AuditEntry, error)
	// AuditHead returns the chain head (zero for an empty log).
	AuditHead(ctx context.Context) (AuditHead, error)
}
