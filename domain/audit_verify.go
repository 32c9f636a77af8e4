package domain

import (
	"cmp"
	"context"
	"fmt"
	"slices"
)

// AuditBreak is the first entry at which the chain does not hold.
type AuditBreak struct {
	// Seq is the sequence number the entry should have (its position).
	Seq int64
	// Reason says what does not match.
	Reason string
}

// AuditReport is the outcome of VerifyAudit.
type AuditReport struct {
	// Entries counts the entries read and found intact.
	Entries int64
	// Keyed counts those of them that are MACed with an audit key; the
	// others are unkeyed, made before a key was configured.
	Keyed int64
	// Checkpoints counts the checkpoints checked.
	Checkpoints int
	// Head is the last intact entry's seq and hash.
	Head AuditHead
	// Break is nil for an intact chain.
	Break *AuditBreak
}

// auditVerifyPage is how many entries VerifyAudit reads at a time.
const auditVerifyPage = 1000

// AuditVerifier checks the audit chain with what is kept outside the
// database: the keys and the checkpoints.
type AuditVerifier struct {
	// Keys verify keyed entries and the checkpoints. Without them, a keyed
	// entry is a break: it cannot be told from a forged one.
	Keys *AuditKeyring
	// Checkpoints are checked against the chain: each must verify under
	// Keys, the entry at its Seq must have its Hash, and the chain must
	// reach the newest of them.
	Checkpoints []AuditCheckpoint
}

// VerifyAudit verifies repo's chain without keys or checkpoints: it holds
// only if every entry is unkeyed. See AuditVerifier.Verify.
func VerifyAudit(ctx context.Context, repo AuditRepository) (AuditReport, error) {
	return AuditVerifier{}.Verify(ctx, repo)
}

// Verify reads the whole chain in order and checks that the entries are
// numbered 1, 2, 3 … without gaps, that each names its predecessor's hash,
// that each hash is the MAC of the entry's canonical encoding under the
// key it names (the SHA-256 for an unkeyed entry), that no unkeyed entry
// follows a keyed one, that the last entry is the recorded chain head, and
// that every checkpoint verifies, matches its entry and is not ahead of the
// chain. It reports the first entry that fails. It needs no caller: it is
// run by the operator on the database. It returns EINVALID for checkpoints
// without keys.
func (v AuditVerifier) Verify(ctx context.Context, repo AuditRepository) (AuditReport, error) {
	var r AuditReport
	if len(v.Checkpoints) > 0 && v.Keys == nil {
		return r, Errorf(EINVALID, "checkpoints are checked with the audit key: none is configured")
	}
	cps := slices.SortedStableFunc(slices.Values(v.Checkpoints), func(a, b AuditCheckpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	for i := range cps {
		if why := v.Keys.checkCheckpoint(&cps[i]); why != "" {
			r.Break = &AuditBreak{Seq: cps[i].Seq, Reason: fmt.Sprintf("the checkpoint of %s: %s", AuditTime(cps[i].At), why)}
			return r, nil
		}
	}
	r.Checkpoints = len(cps)
	next := 0 // the first checkpoint not yet matched to its entry
	for {
		es, err := repo.ReadAuditChain(ctx, r.Head.Seq, auditVerifyPage)
		if err != nil {
			return r, err
		}
		for _, e := range es {
			want := r.Head.Seq + 1
			brk := v.checkEntry(want, r.Head.Hash, r.Keyed > 0, e)
			for ; brk == nil && next < len(cps) && cps[next].Seq == want; next++ {
				if cps[next].Hash != e.Hash {
					brk = &AuditBreak{Seq: want, Reason: fmt.Sprintf("the checkpoint of %s records hash %s for it", AuditTime(cps[next].At), cps[next].Hash)}
				}
			}
			if brk != nil {
				r.Break = brk
				return r, nil
			}
			r.Entries++
			if e.KeyID != "" {
				r.Keyed++
			}
			r.Head = AuditHead{Seq: e.Seq, Hash: e.Hash}
		}
		if len(es) < auditVerifyPage {
			break
		}
	}
	head, err := repo.AuditHead(ctx)
	if err != nil {
		return r, err
	}
	switch {
	case head.Seq > r.Head.Seq:
		r.Break = &AuditBreak{Seq: r.Head.Seq + 1, Reason: fmt.Sprintf("missing: the chain head records %d entries, the log ends at %d", head.Seq, r.Head.Seq)}
	case head != r.Head:
		r.Break = &AuditBreak{Seq: r.Head.Seq, Reason: fmt.Sprintf("the chain head records entry %d with hash %s", head.Seq, head.Hash)}
	case len(cps) > 0 && cps[len(cps)-1].Seq > r.Head.Seq:
		last := cps[len(cps)-1]
		r.Break = &AuditBreak{Seq: r.Head.Seq + 1, Reason: fmt.Sprintf("missing: the checkpoint of %s records entry %d, the log and its head end at %d", AuditTime(last.At), last.Seq, r.Head.Seq)}
	}
	return r, nil
}

// checkEntry checks e, read where entry want belongs after one with
// prevHash; keyedBefore says whether a keyed entry came before it.
func (v AuditVerifier) checkEntry(want int64, prevHash string, keyedBefore bool, e *AuditEntry) *AuditBreak {
	switch {
	case e.Seq != want:
		return &AuditBreak{Seq: want, Reason: fmt.Sprintf("missing or out of order: found entry %d in its place", e.Seq)}
	case e.PrevHash != prevHash:
		return &AuditBreak{Seq: want, Reason: fmt.Sprintf("prevHash %q is not the previous entry's hash %q", e.PrevHash, prevHash)}
	case e.KeyID == "" && keyedBefore:
		return &AuditBreak{Seq: want, Reason: "it is unkeyed but follows keyed entries: once a key signs, every entry is keyed"}
	case e.KeyID == "" && AuditHash(prevHash, e) != e.Hash:
		return &AuditBreak{Seq: want, Reason: "its content does not match its hash"}
	case e.KeyID != "":
		switch ok, known := v.Keys.check(e.KeyID, AuditCanonical(prevHash, e), e.Hash); {
		case !known:
			return &AuditBreak{Seq: want, Reason: fmt.Sprintf("it is MACed with key %s, which the audit keyring does not hold", e.KeyID)}
		case !ok:
			return &AuditBreak{Seq: want, Reason: fmt.Sprintf("its content does not match its MAC under key %s", e.KeyID)}
		}
	}
	return nil
}
