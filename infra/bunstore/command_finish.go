package bunstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

// finishTimeout bounds one batch of finishes: their callers have given up
// their own deadlines (a command's end must be recorded), so this is the
// only one.
const finishTimeout = 30 * time.Second

// finishGroup commits the finishes that arrive together in one transaction
// (group commit): a commit costs a WAL flush, which dwarfs an UPDATE, so
// commands that end at the same time cost about one. Each caller still
// waits for its own commit.
type finishGroup struct {
	mu      sync.Mutex
	pending []*finishRequest
	busy    bool // a goroutine is committing; it takes pending when done
}

type finishRequest struct {
	lease domain.Lease
	f     domain.Finish
	audit *domain.AuditEntry // appended only if the finish is written
	// trace is the caller's trace context: the command's end message is
	// queued in it, though the batch is written outside it.
	trace domain.TraceContext
	done  chan struct{}
	row   *commandRow // nil: no row was RUNNING under owner
	err   error
}

// FinishCommand writes the final state f of a command that is RUNNING under
// lease (its owner and epoch), clears its lease (keeping its owner and
// epoch), and returns the command as stored. It returns domain.ErrLeaseLost
// (wrapped) if the command is no longer RUNNING under the lease (its lease
// expired and it was interrupted, or it was never claimed so), ENOTFOUND if
// there is no such command, and EINVALID if f.Status is not a final status.
// A finish repeated once it is stored (its reply was lost) returns the
// command as stored. audit, unless nil, is appended in the transaction that
// writes the final state, and only if it is written.
//
// Concurrent calls share a transaction (their audit entries too); each
// returns once its own write is committed.
func (s *Store) FinishCommand(ctx context.Context, lease domain.Lease, f domain.Finish, audit *domain.AuditEntry) (*domain.Command, error) {
	id := lease.CommandID
	if !f.Status.Final() || !slices.Contains(domain.CommandStatuses, f.Status) {
		return nil, domain.Errorf(domain.EINVALID, "finish command %s: %q is not a final status", id, f.Status)
	}
	r := &finishRequest{lease: lease, f: f, audit: audit, trace: s.traceContext(ctx), done: make(chan struct{})}
	g := &s.finishes
	g.mu.Lock()
	g.pending = append(g.pending, r)
	if !g.busy {
		g.busy = true
		go s.commitFinishes()
	}
	g.mu.Unlock()
	<-r.done
	if r.err != nil {
		return nil, fmt.Errorf("finish command %s: %w", id, r.err)
	}
	if r.row != nil {
		return r.row.command(), nil
	}
	c, err := s.FindCommandByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Owner == lease.Owner && c.LeaseEpoch == lease.Epoch && c.Status == f.Status &&
		c.FinishedAt != nil && c.FinishedAt.Equal(storedTime(f.FinishedAt)) {
		return c, nil // stored by an earlier try
	}
	return nil, fmt.Errorf("finish command %s (%s, owner %s, epoch %d): %w", id, c.Status, c.Owner, c.LeaseEpoch, domain.ErrLeaseLost)
}

// commitFinishes writes batches of pending finishes until none is left.
func (s *Store) commitFinishes() {
	g := &s.finishes
	for {
		g.mu.Lock()
		batch := g.pending
		g.pending = nil
		if len(batch) == 0 {
			g.busy = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		s.finishBatch(batch)
		for _, r := range batch {
			close(r.done)
		}
	}
}

// finishBatch writes a batch in one statement. Should that fail, each is
// written on its own, so one bad finish fails only its own caller.
func (s *Store) finishBatch(batch []*finishRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), finishTimeout)
	defer cancel()
	if len(batch) > 1 {
		if err := s.finishAll(ctx, batch); err == nil {
			return
		}
	}
	for _, r := range batch {
		r.row, r.err = s.finishOne(ctx, r)
	}
}

// event is the webhook event of r's command having ended as row, in the
// trace of r's caller when it had one.
func (r *finishRequest) event(row *commandRow) domain.WebhookEvent {
	e := domain.CommandEvent(row.command())
	if r.trace.Parent != "" {
		e.Trace = r.trace
	}
	return e
}

// finishColumns are the columns a finish writes, besides the cleared lease.
var finishColumns = []string{"status", "exit_code", "signal", "reason", "finished_at", "output_bytes", "truncated", "last_seq", "output_lost_bytes"}

// finishRow is the stored form of a finish.
func finishRow(r *finishRequest) *commandRow {
	return &commandRow{
		ID: r.lease.CommandID, Owner: r.lease.Owner, LeaseEpoch: r.lease.Epoch, Status: string(r.f.Status),
		ExitCode: r.f.ExitCode, Signal: r.f.Signal, Reason: r.f.Reason, FinishedAt: new(storedTime(r.f.FinishedAt)),
		OutputBytes: r.f.OutputBytes, Truncated: r.f.Truncated, LastSeq: r.f.LastSeq, LostBytes: r.f.LostBytes,
	}
}

// finishAll updates every command of batch that is RUNNING under its
// request's lease in one UPDATE … FROM (VALUES …), appends the audit entries
// of those it updated in the same transaction, and gives each request its
// row once that has committed.
func (s *Store) finishAll(ctx context.Context, batch []*finishRequest) error {
	var byID map[string]*commandRow
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if byID, err = s.updateFinished(ctx, tx, batch); err != nil {
			return err
		}
		var entries []*domain.AuditEntry
		var events []domain.WebhookEvent
		for _, r := range batch {
			if row := byID[r.lease.CommandID]; row != nil {
				entries = append(entries, r.audit)
				events = append(events, r.event(row))
			}
		}
		if err := s.appendWebhookEvents(ctx, tx, events...); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, entries...)
	})
	if err != nil {
		return err
	}
	for _, r := range batch {
		r.row = byID[r.lease.CommandID]
	}
	return nil
}

// updateFinished runs finishAll's UPDATE in tx and returns the rows it
// changed by ID.
func (s *Store) updateFinished(ctx context.Context, tx bun.Tx, batch []*finishRequest) (map[string]*commandRow, error) {
	vals := make([]*commandRow, len(batch))
	for i, r := range batch {
		vals[i] = finishRow(r)
	}
	q := tx.NewUpdate().
		With("_data", tx.NewValues(&vals).Column(append([]string{"id", "owner", "lease_epoch"}, finishColumns...)...)).
		Model((*commandRow)(nil)).
		TableExpr("_data")
	for _, col := range finishColumns {
		q = q.Set("? = _data.?", bun.Ident(col), bun.Ident(col))
	}
	returning := "c.*"
	if !s.isPostgres() {
		returning = "*" // SQLite returns the updated table's columns only
	}
	var rows []*commandRow
	err := q.Set("lease_expires_at = NULL").
		Where("c.id = _data.id").
		Where("c.owner = _data.owner").
		Where("c.lease_epoch = _data.lease_epoch").
		Where("c.status = ?", string(domain.CommandRunning)).
		Returning(returning).
		Scan(ctx, &rows)
	if err := noRows(err); err != nil {
		return nil, err
	}
	byID := make(map[string]*commandRow, len(rows))
	for _, row := range rows {
		byID[row.ID] = row
	}
	return byID, nil
}

// finishOne updates the command of r if it is RUNNING under r.lease, with
// r's audit entry in the same transaction, and returns it as stored, or nil
// if it was not.
func (s *Store) finishOne(ctx context.Context, r *finishRequest) (*commandRow, error) {
	var out *commandRow
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		row := finishRow(r)
		q := tx.NewUpdate().Model(row).Column(finishColumns...)
		var rows []*commandRow
		err := q.Set("lease_expires_at = NULL").
			WherePK().
			Where("c.status = ?", string(domain.CommandRunning)).
			Where("c.owner = ?", r.lease.Owner).
			Where("c.lease_epoch = ?", r.lease.Epoch).
			Returning("*").
			Scan(ctx, &rows)
		if err := noRows(err); err != nil {
			return err
		}
		if len(rows) != 1 {
			return nil
		}
		out = rows[0]
		if err := s.appendWebhookEvents(ctx, tx, r.event(out)); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, r.audit)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
