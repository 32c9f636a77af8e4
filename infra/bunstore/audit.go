package bunstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

var _ domain.AuditRepository = (*Store)(nil)

// auditRow is a row of audit_log.
type auditRow struct {
	bun.BaseModel `bun:"table:audit_log"`

	Seq       int64     `bun:"seq,pk"`
	At        time.Time `bun:"at"`
	Actor     string    `bun:"actor"`
	ClientIP  string    `bun:"client_ip"`
	UserAgent string    `bun:"user_agent"`
	RequestID string    `bun:"request_id"`
	Action    string    `bun:"action"`
	Target    string    `bun:"target"`
	Outcome   string    `bun:"outcome"`
	ErrorCode string    `bun:"error_code"`
	Details   string    `bun:"details"` // a JSON object of strings
	PrevHash  string    `bun:"prev_hash"`
	KeyID     string    `bun:"key_id"`
	Hash      string    `bun:"hash"`
}

// auditHeadRow is the one row of audit_chain_head.
type auditHeadRow struct {
	bun.BaseModel `bun:"table:audit_chain_head"`

	ID   int    `bun:"id,pk"`
	Seq  int64  `bun:"seq"`
	Hash string `bun:"hash"`
}

func newAuditRow(e *domain.AuditEntry) (*auditRow, error) {
	details := e.Details
	if details == nil {
		details = map[string]string{}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return nil, fmt.Errorf("audit entry details: %w", err)
	}
	return &auditRow{
		Seq: e.Seq, At: storedTime(e.At), Actor: e.Actor, ClientIP: e.ClientIP, UserAgent: e.UserAgent,
		RequestID: e.RequestID, Action: e.Action, Target: e.Target, Outcome: string(e.Outcome),
		ErrorCode: e.ErrorCode, Details: string(b), PrevHash: e.PrevHash, KeyID: e.KeyID, Hash: e.Hash,
	}, nil
}

func (r *auditRow) entry() (*domain.AuditEntry, error) {
	e := &domain.AuditEntry{
		Seq: r.Seq, At: r.At.UTC(), Actor: r.Actor, ClientIP: r.ClientIP, UserAgent: r.UserAgent,
		RequestID: r.RequestID, Action: r.Action, Target: r.Target, Outcome: domain.AuditOutcome(r.Outcome),
		ErrorCode: r.ErrorCode, PrevHash: r.PrevHash, KeyID: r.KeyID, Hash: r.Hash,
	}
	if err := json.Unmarshal([]byte(r.Details), &e.Details); err != nil {
		return nil, fmt.Errorf("audit entry %d: details: %w", r.Seq, err)
	}
	if len(e.Details) == 0 {
		e.Details = nil
	}
	return e, nil
}

// SignAuditWith makes the audit entries appended from now on MACed with
// keys' signing key (nil: unkeyed). Call it before the store is used.
func (s *Store) SignAuditWith(keys *domain.AuditKeyring) {
	s.auditKeys = keys
}

// AppendAudit seals entries and appends them in one transaction, in order.
func (s *Store) AppendAudit(ctx context.Context, entries ...*domain.AuditEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		return s.appendAudit(ctx, tx, entries...)
	})
}

// appendAudit seals entries (nil ones are skipped) and appends them inside
// tx. It locks the chain head row first (on SQLite the transaction already
// holds the database's write lock), so concurrent appends from any process
// wait for one another and each sees its predecessor's head. The lock is held
// until tx ends: callers append last, after their own changes, to hold it
// briefly.
func (s *Store) appendAudit(ctx context.Context, tx bun.Tx, entries ...*domain.AuditEntry) error {
	rows := make([]*auditRow, 0, len(entries))
	var head auditHeadRow
	q := tx.NewSelect().Model(&head).Where("id = 1")
	if s.isPostgres() {
		q = q.For("UPDATE")
	}
	locked := false
	for _, e := range entries {
		if e == nil {
			continue
		}
		if !locked {
			if err := q.Scan(ctx); err != nil {
				return fmt.Errorf("audit: lock the chain head: %w", translate(err))
			}
			if err := s.refuseUnkeyedAfterKeyed(ctx, tx, head.Seq); err != nil {
				return err
			}
			locked = true
		}
		e.SealWith(s.auditKeys, head.Seq, head.Hash)
		row, err := newAuditRow(e)
		if err != nil {
			return err
		}
		rows = append(rows, row)
		head.Seq, head.Hash = e.Seq, e.Hash
	}
	if len(rows) == 0 {
		return nil
	}
	if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("audit: append %d entries: %w", len(rows), translate(err))
	}
	if _, err := tx.NewUpdate().Model(&head).Column("seq", "hash").WherePK().Exec(ctx); err != nil {
		return fmt.Errorf("audit: move the chain head: %w", translate(err))
	}
	return nil
}

// refuseUnkeyedAfterKeyed fails if this store has no audit key and the
// entry at seq, the chain's last, is keyed: an unkeyed entry after it would
// break the chain for good (a process, or `rdev keys`, started without the
// key the others have), so the change is refused instead, saying why.
func (s *Store) refuseUnkeyedAfterKeyed(ctx context.Context, tx bun.Tx, seq int64) error {
	if s.auditKeys != nil || seq == 0 {
		return nil
	}
	var keyID string
	err := tx.NewSelect().Model((*auditRow)(nil)).Column("key_id").Where("seq = ?", seq).Scan(ctx, &keyID)
	if err := noRows(err); err != nil {
		return fmt.Errorf("audit: read the last entry's key: %w", translate(err))
	}
	if keyID != "" {
		return fmt.Errorf("audit: the log's entries are MACed with audit key %s and this process has no audit key: "+
			"configure RDEV_AUDIT_KEY_FILE as the other rdev processes have it", keyID)
	}
	return nil
}

// FindAuditEntries returns the entries matching f, newest (highest Seq)
// first, at most f.Limit of them (all when it is 0).
func (s *Store) FindAuditEntries(ctx context.Context, f domain.AuditFilter) ([]*domain.AuditEntry, error) {
	var rows []*auditRow
	q := s.db.NewSelect().Model(&rows).OrderExpr("seq DESC")
	if f.Actor != "" {
		q = q.Where("actor = ?", f.Actor)
	}
	if f.Action != "" {
		q = q.Where("action = ?", f.Action)
	}
	if f.Target != "" {
		q = q.Where("target = ?", f.Target)
	}
	if !f.Since.IsZero() {
		q = q.Where("at >= ?", storedTime(f.Since))
	}
	if !f.Until.IsZero() {
		q = q.Where("at < ?", storedTime(f.Until))
	}
	if f.BeforeSeq > 0 {
		q = q.Where("seq < ?", f.BeforeSeq)
	}
	if f.Limit > 0 {
		q = q.Limit(int64(f.Limit))
	}
	if err := noRows(q.Scan(ctx)); err != nil {
		return nil, fmt.Errorf("find audit entries: %w", translate(err))
	}
	return auditEntries(rows)
}

// ReadAuditChain returns up to limit entries with Seq above afterSeq, in Seq
// order, exactly as stored.
func (s *Store) ReadAuditChain(ctx context.Context, afterSeq int64, limit int) ([]*domain.AuditEntry, error) {
	var rows []*auditRow
	err := s.db.NewSelect().Model(&rows).
		Where("seq > ?", afterSeq).
		OrderExpr("seq ASC").
		Limit(int64(limit)).
		Scan(ctx)
	if err := noRows(err); err != nil {
		return nil, fmt.Errorf("read audit chain: %w", translate(err))
	}
	return auditEntries(rows)
}

// AuditHead returns the chain head: the seq and hash of the last entry
// appended, zero for an empty log.
func (s *Store) AuditHead(ctx context.Context) (domain.AuditHead, error) {
	var head auditHeadRow
	err := s.db.NewSelect().Model(&head).Where("id = 1").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return domain.AuditHead{}, errors.New("audit: the chain head row is missing")
	} else if err != nil {
		return domain.AuditHead{}, fmt.Errorf("audit: read the chain head: %w", translate(err))
	}
	return domain.AuditHead{Seq: head.Seq, Hash: head.Hash}, nil
}

func auditEntries(rows []*auditRow) ([]*domain.AuditEntry, error) {
	out := make([]*domain.AuditEntry, 0, len(rows))
	for _, r := range rows {
		e, err := r.entry()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}
