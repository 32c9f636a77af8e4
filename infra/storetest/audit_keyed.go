package storetest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/domain"
)

// The keyed tamper tests build a chain of keyedChainSize entries, all MACed,
// with checkpoints taken at keyedCheckpointAt and at the end, then tamper
// with it in raw SQL as someone who can write the database but holds
// neither the audit key nor the exported checkpoints could.
const (
	keyedChainSize    = 50
	keyedCheckpointAt = 30
	keyedTampered     = 17 // the entry the edits aim at
	keyedCut          = 40 // the entries after this one are cut off
)

// auditTestKeys is the keyring of the keyed tests: the first key signs, the
// second is an old one that only verifies.
func auditTestKeys(tb testing.TB) *domain.AuditKeyring {
	tb.Helper()
	k, err := domain.NewAuditKeyring([]byte(strings.Repeat("k", 32)), []byte(strings.Repeat("o", 40)))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// checkpointList is an AuditCheckpointSink in memory.
type checkpointList []domain.AuditCheckpoint

// WriteAuditCheckpoint keeps c.
func (l *checkpointList) WriteAuditCheckpoint(_ context.Context, c domain.AuditCheckpoint) error {
	*l = append(*l, c)
	return nil
}

// keyedChain is a store holding a keyed chain and its checkpoints.
type keyedChain struct {
	repo AuditStore
	db   AuditDB
	keys *domain.AuditKeyring
	cps  checkpointList
}

// newKeyedChain builds the chain, checks that it verifies intact, and lifts
// the triggers.
func newKeyedChain(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) *keyedChain {
	t.Helper()
	c := &keyedChain{keys: auditTestKeys(t)}
	c.repo, c.db = newStore(t)
	c.repo.SignAuditWith(c.keys)
	ctx := t.Context()
	cp := domain.NewAuditCheckpointer(c.repo, c.keys, &c.cps)
	for i := range keyedChainSize {
		mustAppend(t, ctx, c.repo, auditEntry(i))
		if i+1 == keyedCheckpointAt || i+1 == keyedChainSize {
			if _, ok, err := cp.Checkpoint(ctx); err != nil || !ok {
				t.Fatalf("Checkpoint = %v, %v", ok, err)
			}
		}
	}
	if _, ok, err := cp.Checkpoint(ctx); err != nil || ok {
		t.Fatalf("Checkpoint of an unmoved head = wrote %v, %v; want nothing written", ok, err)
	}
	r := c.verify(t, true)
	if r.Break != nil || r.Entries != keyedChainSize || r.Keyed != keyedChainSize || r.Checkpoints != 2 {
		t.Fatalf("the untampered chain: %+v; want %d intact keyed entries, 2 checkpoints", r, keyedChainSize)
	}
	liftTriggers(t, ctx, c.db)
	return c
}

// verify verifies the chain with the keys, and with the checkpoints if
// withCheckpoints.
func (c *keyedChain) verify(tb testing.TB, withCheckpoints bool) domain.AuditReport {
	tb.Helper()
	v := domain.AuditVerifier{Keys: c.keys}
	if withCheckpoints {
		v.Checkpoints = c.cps
	}
	r, err := v.Verify(tb.Context(), c.repo)
	if err != nil {
		tb.Fatalf("Verify: %v", err)
	}
	return r
}

func (c *keyedChain) exec(tb testing.TB, q string, args ...any) {
	tb.Helper()
	if err := c.db.Exec(tb.Context(), q, args...); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
}

// assertBreak fails unless r breaks at seq, with the entries before intact
// and a reason containing why.
func assertBreak(tb testing.TB, what string, r domain.AuditReport, seq int64, why string) {
	tb.Helper()
	switch {
	case r.Break == nil:
		tb.Errorf("%s: the chain verifies intact (%d entries); want a break at entry %d", what, r.Entries, seq)
	case r.Break.Seq != seq || r.Entries != seq-1:
		tb.Errorf("%s: break %+v after %d entries; want one at entry %d", what, r.Break, r.Entries, seq)
	case !strings.Contains(r.Break.Reason, why):
		tb.Errorf("%s: break reason %q; want it to say %q", what, r.Break.Reason, why)
	}
}

// testAuditKeyed checks that unkeyed entries made before a key stay
// verifiable, that entries MACed with an older key of the keyring verify,
// and that without the key a keyed chain does not.
func testAuditKeyed(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	repo, _ := newStore(t)
	ctx := t.Context()
	mustAppend(t, ctx, repo, auditEntry(0), auditEntry(1), auditEntry(2))
	old, err := domain.NewAuditKeyring([]byte(strings.Repeat("o", 40)))
	if err != nil {
		t.Fatal(err)
	}
	repo.SignAuditWith(old)
	mustAppend(t, ctx, repo, auditEntry(3), auditEntry(4))
	keys := auditTestKeys(t) // signs with a new key, still holds old
	repo.SignAuditWith(keys)
	mustAppend(t, ctx, repo, auditEntry(5))
	got := mustReadChain(t, ctx, repo)
	for i, want := range []string{"", "", "", old.SigningKeyID(), old.SigningKeyID(), keys.SigningKeyID()} {
		if got[i].KeyID != want {
			t.Errorf("entry %d: key %q, want %q", got[i].Seq, got[i].KeyID, want)
		}
	}
	r, err := domain.AuditVerifier{Keys: keys}.Verify(ctx, repo)
	if err != nil || r.Break != nil || r.Entries != 6 || r.Keyed != 3 {
		t.Errorf("Verify = %+v, %v; want 6 intact entries, 3 keyed", r, err)
	}
	// A process without the key cannot append after keyed entries.
	repo.SignAuditWith(nil)
	if err := repo.AppendAudit(ctx, auditEntry(6)); err == nil || !strings.Contains(err.Error(), "has no audit key") {
		t.Errorf("AppendAudit without a key after keyed entries = %v; want it refused", err)
	}
	if err := repo.CreateCommand(ctx, newCommand("web", 1), auditEntry(7)); err == nil {
		t.Error("CreateCommand without a key after keyed entries succeeded")
	}
	r = mustVerify(t, ctx, repo) // no keys
	assertBreak(t, "verified without the key", r, 4, "which the audit keyring does not hold")
	if _, err := (domain.AuditVerifier{Checkpoints: []domain.AuditCheckpoint{{Seq: 1}}}).Verify(ctx, repo); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("Verify with checkpoints and no keys = %v, want EINVALID", err)
	}
}

// Tampering 1: a row edited in place.
func testAuditTamperEditedRow(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	c := newKeyedChain(t, newStore)
	c.exec(t, "UPDATE audit_log SET target = 'elsewhere' WHERE seq = ?", keyedTampered)
	assertBreak(t, "an edited row", c.verify(t, true), keyedTampered, "does not match its MAC")
}

// Tampering 2: a row deleted.
func testAuditTamperDeletedRow(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	c := newKeyedChain(t, newStore)
	c.exec(t, "DELETE FROM audit_log WHERE seq = ?", keyedTampered)
	assertBreak(t, "a deleted row", c.verify(t, true), keyedTampered, "missing")
}

// Tampering 3: rows cut off the end, the head table left as it was.
func testAuditTamperCutTail(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	c := newKeyedChain(t, newStore)
	c.exec(t, "DELETE FROM audit_log WHERE seq > ?", keyedCut)
	assertBreak(t, "a cut tail", c.verify(t, false), keyedCut+1, "the chain head records")
	assertBreak(t, "a cut tail, with checkpoints", c.verify(t, true), keyedCut+1, "missing")
}

// Tampering 4: rows cut off the end and the head table rewound to match.
// Nothing in the database is left to tell; only a checkpoint does.
func testAuditTamperRewoundHead(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	c := newKeyedChain(t, newStore)
	ctx := t.Context()
	last := mustReadChain(t, ctx, c.repo)[keyedCut-1]
	c.exec(t, "DELETE FROM audit_log WHERE seq > ?", keyedCut)
	c.exec(t, "UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1", last.Seq, last.Hash)
	if r := c.verify(t, false); r.Break != nil {
		t.Errorf("without checkpoints the rewound chain breaks at %+v; the database alone cannot tell", r.Break)
	}
	assertBreak(t, "a rewound head", c.verify(t, true), keyedCut+1, "the checkpoint of")
	// Cut back before the older checkpoint too: the entry it records is gone.
	first := mustReadChain(t, ctx, c.repo)[keyedCheckpointAt-2]
	c.exec(t, "DELETE FROM audit_log WHERE seq >= ?", keyedCheckpointAt)
	c.exec(t, "UPDATE audit_chain_head SET seq = ?, hash = ? WHERE id = 1", first.Seq, first.Hash)
	assertBreak(t, "a head rewound past both checkpoints", c.verify(t, true), keyedCheckpointAt, "the checkpoint of")
}

// Tampering 5: a row edited and every later hash and the head recomputed,
// without the key: as unkeyed entries, or with a MAC under another key
// that claims the audit key's ID. The key catches it at the edited row,
// with or without checkpoints.
func testAuditTamperRecomputed(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	forgers := map[string]func(prevHash string, e *domain.AuditEntry) string{
		"unkeyed": func(prevHash string, e *domain.AuditEntry) string {
			e.KeyID = ""
			return domain.AuditHash(prevHash, e)
		},
		"another key": func(prevHash string, e *domain.AuditEntry) string {
			m := hmac.New(sha256.New, []byte(strings.Repeat("m", 32)))
			m.Write(domain.AuditCanonical(prevHash, e))
			return hex.EncodeToString(m.Sum(nil))
		},
	}
	for name, forge := range forgers {
		t.Run(name, func(t *testing.T) {
			c := newKeyedChain(t, newStore)
			chain := mustReadChain(t, t.Context(), c.repo)
			prevHash := chain[keyedTampered-2].Hash
			for _, e := range chain[keyedTampered-1:] {
				if e.Seq == keyedTampered {
					e.Target = "elsewhere"
				}
				e.PrevHash, e.Hash = prevHash, forge(prevHash, e)
				c.exec(t, "UPDATE audit_log SET target = ?, key_id = ?, prev_hash = ?, hash = ? WHERE seq = ?", e.Target, e.KeyID, e.PrevHash, e.Hash, e.Seq)
				prevHash = e.Hash
			}
			c.exec(t, "UPDATE audit_chain_head SET hash = ? WHERE id = 1", prevHash)
			why := "does not match its MAC"
			if name == "unkeyed" {
				why = "follows keyed entries"
			}
			assertBreak(t, "a recomputed chain", c.verify(t, false), keyedTampered, why)
			assertBreak(t, "a recomputed chain, with checkpoints", c.verify(t, true), keyedTampered, why)
		})
	}
}

// testAuditForgedCheckpoint checks that a checkpoint changed outside rdev is
// caught, whatever the chain says.
func testAuditForgedCheckpoint(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	c := newKeyedChain(t, newStore)
	assertForged := func(what string, seq int64, why string) {
		t.Helper()
		if r := c.verify(t, true); r.Break == nil || r.Break.Seq != seq || !strings.Contains(r.Break.Reason, why) {
			t.Errorf("%s: %+v; want a break at %d saying %q", what, r, seq, why)
		}
	}
	c.cps[0].Seq = keyedCut
	assertForged("a checkpoint moved to another entry", keyedCut, "forged or altered")
	c.cps[0].Seq = keyedCheckpointAt
	other, err := domain.NewAuditKeyring([]byte(strings.Repeat("m", 32)))
	if err != nil {
		t.Fatal(err)
	}
	c.cps[1] = other.SignCheckpoint(domain.AuditHead{Seq: keyedChainSize + 5, Hash: c.cps[1].Hash}, c.cps[1].At)
	assertForged("a checkpoint under another key", keyedChainSize+5, "does not hold")
}
