package domain

import (
	"context"
	"slices"
	"sync"
)

// auditLog is an in-memory AuditRepository. The fake command and key
// repositories append to it under their own lock, as a store appends in the
// transaction of the change; appendErr makes every append fail, and then
// the change is not made either.
type auditLog struct {
	mu        sync.Mutex
	entries   []*AuditEntry
	appendErr error
}

var _ AuditRepository = (*auditLog)(nil)

func newAuditLog() *auditLog { return &auditLog{} }

func (l *auditLog) AppendAudit(_ context.Context, entries ...*AuditEntry) error {
	return l.add(entries...)
}

// add seals and appends entries, skipping nil ones, or appends none.
func (l *auditLog) add(entries ...*AuditEntry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.appendErr != nil {
		return l.appendErr
	}
	for _, e := range entries {
		if e == nil {
			continue
		}
		prevSeq, prevHash := int64(0), ""
		if n := len(l.entries); n > 0 {
			prevSeq, prevHash = l.entries[n-1].Seq, l.entries[n-1].Hash
		}
		e.Seal(prevSeq, prevHash)
		cp := *e
		l.entries = append(l.entries, &cp)
	}
	return nil
}

func (l *auditLog) setErr(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.appendErr = err
}

// all returns a copy of the entries, oldest first.
func (l *auditLog) all() []*AuditEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.entries)
}

func (l *auditLog) FindAuditEntries(_ context.Context, f AuditFilter) ([]*AuditEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*AuditEntry
	for _, e := range slices.Backward(l.entries) {
		if (f.Actor != "" && e.Actor != f.Actor) || (f.Action != "" && e.Action != f.Action) ||
			(f.Target != "" && e.Target != f.Target) || (!f.Since.IsZero() && e.At.Before(f.Since)) ||
			(!f.Until.IsZero() && !e.At.Before(f.Until)) || (f.BeforeSeq > 0 && e.Seq >= f.BeforeSeq) {
			continue
		}
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
		out = append(out, e)
	}
	return out, nil
}

func (l *auditLog) ReadAuditChain(_ context.Context, afterSeq int64, limit int) ([]*AuditEntry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*AuditEntry
	for _, e := range l.entries {
		if e.Seq > afterSeq && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (l *auditLog) AuditHead(context.Context) (AuditHead, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.entries); n > 0 {
		return AuditHead{Seq: l.entries[n-1].Seq, Hash: l.entries[n-1].Hash}, nil
	}
	return AuditHead{}, nil
}
