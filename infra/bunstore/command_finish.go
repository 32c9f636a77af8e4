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
	id, owner string
	f         domain.Finish
	done      chan struct{}
	row       *commandRow // nil: no row was RUNNING under owner
	err       error
}

// FinishCommand writes the final state f of a command that is RUNNING under
// owner, clears its lease (keeping its owner), and returns the command as
// stored. It returns ECONFLICT if the command is no longer RUNNING under
// owner (its lease expired and it was interrupted, or it was never claimed by
// owner), ENOTFOUND if there is no such command, and EINVALID if f.Status is
// not a final status.
//
// Concurrent calls share a transaction; each returns once its own write is
// committed.
func (s *Store) FinishCommand(ctx context.Context, id, owner string, f domain.Finish) (*domain.Command, error) {
	if !f.Status.Final() || !slices.Contains(domain.CommandStatuses, f.Status) {
		return nil, domain.Errorf(domain.EINVALID, "finish command %s: %q is not a final status", id, f.Status)
	}
	r := &finishRequest{id: id, owner: owner, f: f, done: make(chan struct{})}
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
	if c.Status == domain.CommandRunning {
		return nil, domain.Errorf(domain.ECONFLICT, "command %s is running under another owner", id)
	}
	return nil, domain.Errorf(domain.ECONFLICT, "command %s is no longer running (%s)", id, c.Status)
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

// finishColumns are the columns a finish writes, besides the cleared lease.
var finishColumns = []string{"status", "exit_code", "signal", "reason", "finished_at", "output_bytes", "truncated", "last_seq"}

// finishRow is the stored form of a finish.
func finishRow(r *finishRequest) *commandRow {
	return &commandRow{
		ID: r.id, Owner: r.owner, Status: string(r.f.Status), ExitCode: r.f.ExitCode, Signal: r.f.Signal,
		Reason: r.f.Reason, FinishedAt: new(storedTime(r.f.FinishedAt)), OutputBytes: r.f.OutputBytes,
		Truncated: r.f.Truncated, LastSeq: r.f.LastSeq,
	}
}

// finishAll updates every command of batch that is RUNNING under its
// request's owner in one UPDATE … FROM (VALUES …), and gives each request its
// row.
func (s *Store) finishAll(ctx context.Context, batch []*finishRequest) error {
	vals := make([]*commandRow, len(batch))
	for i, r := range batch {
		vals[i] = finishRow(r)
	}
	q := s.db.NewUpdate().
		With("_data", s.db.NewValues(&vals).Column(append([]string{"id", "owner"}, finishColumns...)...)).
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
		Where("c.status = ?", string(domain.CommandRunning)).
		Returning(returning).
		Scan(ctx, &rows)
	if err := noRows(err); err != nil {
		return err
	}
	byID := make(map[string]*commandRow, len(rows))
	for _, row := range rows {
		byID[row.ID] = row
	}
	for _, r := range batch {
		r.row = byID[r.id]
	}
	return nil
}

// finishOne updates the command of r if it is RUNNING under r.owner, and
// returns it as stored, or nil if it was not.
func (s *Store) finishOne(ctx context.Context, r *finishRequest) (*commandRow, error) {
	row := finishRow(r)
	q := s.db.NewUpdate().Model(row).Column(finishColumns...)
	var rows []*commandRow
	err := q.Set("lease_expires_at = NULL").
		WherePK().
		Where("c.status = ?", string(domain.CommandRunning)).
		Where("c.owner = ?", r.owner).
		Returning("*").
		Scan(ctx, &rows)
	if err := noRows(err); err != nil {
		return nil, err
	}
	if len(rows) == 1 {
		return rows[0], nil
	}
	return nil, nil
}
