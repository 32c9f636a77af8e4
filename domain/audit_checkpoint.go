package domain

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"
)

// AuditCheckpoint is the chain head at a moment, MACed with an audit key and
// kept outside the database (a file, the log shipped off the machine). The
// database alone cannot undo what a checkpoint records: entries up to Seq
// cannot be cut off, or rewritten, without VerifyAudit noticing.
type AuditCheckpoint struct {
	// Seq and Hash are the last entry's when the checkpoint was made.
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	// At is when it was made, in UTC with microsecond precision.
	At time.Time `json:"at"`
	// KeyID names the key MAC is made with.
	KeyID string `json:"keyId"`
	// MAC is the hex HMAC-SHA-256 of the checkpoint's canonical encoding:
	// netstrings of "rdev-audit-checkpoint-v1", KeyID, Seq (decimal), Hash
	// and At (as AuditTime formats it).
	MAC string `json:"mac"`
}

// auditCheckpointEncoding is the first field of a checkpoint's encoding.
const auditCheckpointEncoding = "rdev-audit-checkpoint-v1"

func (c *AuditCheckpoint) canonical() []byte {
	b := make([]byte, 0, 160)
	for _, s := range []string{auditCheckpointEncoding, c.KeyID, strconv.FormatInt(c.Seq, 10), c.Hash, AuditTime(c.At)} {
		b = appendNetstring(b, s)
	}
	return b
}

// SignCheckpoint returns a checkpoint of head made at at, MACed with the
// signing key.
func (k *AuditKeyring) SignCheckpoint(head AuditHead, at time.Time) AuditCheckpoint {
	c := AuditCheckpoint{Seq: head.Seq, Hash: head.Hash, At: at.UTC().Truncate(time.Microsecond), KeyID: k.SigningKeyID()}
	c.MAC, _ = k.mac(c.KeyID, c.canonical())
	return c
}

// checkCheckpoint returns why c does not verify under keys, or "".
func (k *AuditKeyring) checkCheckpoint(c *AuditCheckpoint) string {
	ok, known := k.check(c.KeyID, c.canonical(), c.MAC)
	switch {
	case !known:
		return fmt.Sprintf("it is MACed with key %s, which the audit keyring does not hold", c.KeyID)
	case !ok:
		return "its MAC does not match: the checkpoint was forged or altered"
	}
	return ""
}

// ParseAuditCheckpoints reads checkpoints as JSON lines, one per line: the
// checkpoint itself (as the checkpoint file holds them), or a structured
// log record that carries it as "checkpoint" (as rdev logs them). Blank
// lines are skipped. It returns EINVALID naming the first line that is
// neither.
func ParseAuditCheckpoints(r io.Reader) ([]AuditCheckpoint, error) {
	var out []AuditCheckpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var rec struct {
			AuditCheckpoint
			Checkpoint *AuditCheckpoint `json:"checkpoint"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			return nil, Errorf(EINVALID, "line %d: not a JSON checkpoint: %v", n, err)
		}
		c := rec.AuditCheckpoint
		if rec.Checkpoint != nil {
			c = *rec.Checkpoint
		}
		if c.Seq < 1 || c.Hash == "" || c.KeyID == "" || c.MAC == "" {
			return nil, Errorf(EINVALID, "line %d: not a checkpoint (it needs seq, hash, at, keyId and mac)", n)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read checkpoints: %w", err)
	}
	return out, nil
}

// AuditCheckpointSink keeps checkpoints outside the database.
type AuditCheckpointSink interface {
	// WriteAuditCheckpoint keeps c; it has been kept when it returns nil.
	WriteAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error
}

// AuditCheckpointer signs the chain head and hands the checkpoint to its
// sinks, now and then and once more at shutdown.
type AuditCheckpointer struct {
	repo  AuditRepository
	keys  *AuditKeyring
	sinks []AuditCheckpointSink
	now   func() time.Time

	mu   sync.Mutex
	last AuditHead // the head of the last checkpoint written
}

// NewAuditCheckpointer returns a checkpointer of repo's head, MACed with
// keys, written to every sink.
func NewAuditCheckpointer(repo AuditRepository, keys *AuditKeyring, sinks ...AuditCheckpointSink) *AuditCheckpointer {
	return &AuditCheckpointer{repo: repo, keys: keys, sinks: sinks, now: time.Now}
}

// Checkpoint signs the current head and writes it to every sink, unless the
// log is empty or the head has not moved since the last checkpoint this
// checkpointer wrote. It returns the checkpoint, whether it wrote it, and
// the errors of the sinks that failed (the others have kept it; all are
// given the same head again next time).
func (c *AuditCheckpointer) Checkpoint(ctx context.Context) (AuditCheckpoint, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	head, err := c.repo.AuditHead(ctx)
	if err != nil {
		return AuditCheckpoint{}, false, err
	}
	if head.Seq == 0 || head == c.last {
		return AuditCheckpoint{}, false, nil
	}
	cp := c.keys.SignCheckpoint(head, c.now())
	var errs []error
	for _, s := range c.sinks {
		if err := s.WriteAuditCheckpoint(ctx, cp); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		c.last = head // a sink that failed is given the next head again
	}
	return cp, true, errors.Join(errs...)
}
