package bunstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

// LeaseExpiredReason is the Reason of a command that ExpireLeases ended.
const LeaseExpiredReason = "lease expired: the process running it stopped"

// claimLockSQL takes a transaction-scoped advisory lock that serializes
// claims across every process sharing the database, so the per-project
// RUNNING count a claim reads cannot be changed by another claim before it
// commits. The key is "rdev" in the high 32 bits and the OID of the commands
// table (found through search_path) in the low ones: one lock per schema,
// unlikely to collide with another application's advisory locks.
const claimLockSQL = `SELECT pg_advisory_xact_lock((x'72646576'::bigint << 32) | 'commands'::regclass::oid::bigint)`

// queuedRow is what a claim reads of a queued command to choose it.
type queuedRow struct {
	ID        string `bun:"id"`
	ProjectID string `bun:"project_id"`
	Priority  int    `bun:"priority"`
}

// ClaimCommands moves up to r.Max QUEUED commands to RUNNING under r.Owner,
// with leases until r.LeaseUntil and r.Now as their start, and returns them
// with their env values, which the same update clears in storage (only the
// names stay), in claim order: highest priority first, then oldest (lowest ID) first. A
// project's command is skipped while the project has r.PerProject RUNNING
// commands, counting those of every owner; r.PerProject <= 0 means no cap.
// It returns EINVALID for an empty r.Owner.
//
// On Postgres the claim holds a transaction-scoped advisory lock, so claims
// from any number of processes take turns and the per-project cap is exact;
// queued rows are picked FOR UPDATE SKIP LOCKED, so a claim never waits for a
// row another transaction (such as a cancellation) holds. On SQLite the
// transaction holds the database's write lock from its start.
func (s *Store) ClaimCommands(ctx context.Context, r domain.ClaimRequest) ([]*domain.Command, error) {
	if r.Owner == "" {
		return nil, domain.Errorf(domain.EINVALID, "claim: the owner is empty")
	}
	if r.Max <= 0 {
		return nil, nil
	}
	var rows []*commandRow
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if s.isPostgres() {
			// Its own statement: in READ COMMITTED each statement sees what
			// was committed when it started, so the counts read next include
			// the previous lock holder's claims.
			if _, err := tx.ExecContext(ctx, claimLockSQL); err != nil {
				return fmt.Errorf("claim: lock: %w", err)
			}
		}
		ids, err := s.pickQueued(ctx, tx, r)
		if err != nil || len(ids) == 0 {
			return err
		}
		// The env values are read before the update clears them: this
		// reply is the only place they are kept from now on.
		var envs []envRow
		err = tx.NewSelect().Model((*commandRow)(nil)).Column("id", "env").
			Where("id IN (?)", bun.List(ids)).Where("env <> ?", s.emptyEnv()).
			Scan(ctx, &envs)
		if err := noRows(err); err != nil {
			return fmt.Errorf("claim: read env: %w", err)
		}
		err = tx.NewUpdate().Model((*commandRow)(nil)).
			Set("status = ?", string(domain.CommandRunning)).
			Set("owner = ?", r.Owner).
			Set("lease_expires_at = ?", storedTime(r.LeaseUntil)).
			Set("lease_epoch = lease_epoch + 1").
			Set("env = ?", s.envNamesOnly()).
			// Never before the command was created: r.Now may have been
			// read just before a command that this claim takes was queued.
			Set("started_at = CASE WHEN created_at > ? THEN created_at ELSE ? END", storedTime(r.Now), storedTime(r.Now)).
			// By ID alone: the rows are locked (on SQLite, the database is)
			// and still QUEUED, and a status condition here could lead the
			// planner to the queue's partial index instead of the primary key.
			Where("id IN (?)", bun.List(ids)).
			Returning("*").
			Scan(ctx, &rows)
		if err := noRows(err); err != nil {
			return fmt.Errorf("claim: update: %w", err)
		}
		if err := s.appendCommandEvents(ctx, tx, rows...); err != nil {
			return err
		}
		values := make(map[string]map[string]string, len(envs))
		for _, e := range envs {
			values[e.ID] = e.Env
		}
		for _, row := range rows {
			if v, ok := values[row.ID]; ok {
				row.Env = v
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rows, func(a, b *commandRow) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(a.ID, b.ID))
	})
	return commandsOf(rows), nil
}

// pickQueued chooses the IDs of the commands a claim takes, reading the
// queue in claim order a page at a time and skipping projects that are full.
// On Postgres the rows it reads stay locked until tx ends.
func (s *Store) pickQueued(ctx context.Context, tx bun.Tx, r domain.ClaimRequest) ([]string, error) {
	capped := r.PerProject > 0
	running := map[string]int{}
	var full []string
	if capped {
		var counts []struct {
			ProjectID string `bun:"project_id"`
			N         int    `bun:"n"`
		}
		// Running commands are those with a lease (a CHECK constraint says
		// so); asking for the lease reads only the running index.
		err := tx.NewSelect().Model((*commandRow)(nil)).
			Column("project_id").
			ColumnExpr("count(*) AS n").
			Where("lease_expires_at IS NOT NULL").
			Group("project_id").
			Scan(ctx, &counts)
		if err := noRows(err); err != nil {
			return nil, fmt.Errorf("claim: count running commands: %w", err)
		}
		for _, c := range counts {
			running[c.ProjectID] = c.N
			if c.N >= r.PerProject {
				full = append(full, c.ProjectID)
			}
		}
	}

	// A page holds only as many rows as are still wanted: on Postgres every
	// row read is locked, which costs a write per row. Full projects are left
	// out of each page, so every page yields at least one command, and a
	// claim needs another page only when one held more commands of a
	// project than it has free slots.
	var picked []string
	var last *queuedRow
	for {
		page := r.Max - len(picked)
		var rows []queuedRow
		q := tx.NewSelect().Model((*commandRow)(nil)).
			Column("id", "project_id", "priority").
			Where("status = ?", string(domain.CommandQueued)).
			OrderExpr("priority DESC, id ASC").
			Limit(int64(page))
		if len(full) > 0 {
			q = q.Where("project_id NOT IN (?)", bun.List(full))
		}
		if last != nil {
			// After the last row read, in (priority DESC, id ASC) order.
			q = q.Where("priority <= ? AND (priority < ? OR id > ?)", last.Priority, last.Priority, last.ID)
		}
		if s.isPostgres() {
			q = q.For("UPDATE SKIP LOCKED")
		}
		if err := noRows(q.Scan(ctx, &rows)); err != nil {
			return nil, fmt.Errorf("claim: read queue: %w", err)
		}
		for _, row := range rows {
			if capped && running[row.ProjectID] >= r.PerProject {
				continue
			}
			picked = append(picked, row.ID)
			if len(picked) == r.Max {
				return picked, nil
			}
			running[row.ProjectID]++
			if capped && running[row.ProjectID] == r.PerProject {
				full = append(full, row.ProjectID)
			}
		}
		if len(rows) < page {
			return picked, nil
		}
		last = &rows[len(rows)-1]
	}
}

// RenewLeases extends to until the leases owner holds on the RUNNING
// commands among ids. It reports, sorted, the IDs among those whose
// cancellation was requested, and the IDs it could not renew: unknown, no
// longer RUNNING, or held by another owner.
func (s *Store) RenewLeases(ctx context.Context, owner string, ids []string, until time.Time) (domain.LeaseRenewal, error) {
	if len(ids) == 0 {
		return domain.LeaseRenewal{}, nil
	}
	var rows []struct {
		ID              string `bun:"id"`
		CancelRequested bool   `bun:"cancel_requested"`
	}
	err := s.db.NewUpdate().Model((*commandRow)(nil)).
		Set("lease_expires_at = ?", storedTime(until)).
		Where("id IN (?)", s.lockedInIDOrder(s.db.NewSelect().Model((*commandRow)(nil)).
			Column("id").
			Where("id IN (?)", bun.List(ids)).
			Where("status = ?", string(domain.CommandRunning)).
			Where("owner = ?", owner), false)).
		Where("status = ?", string(domain.CommandRunning)).
		Where("owner = ?", owner).
		Returning("id, cancel_requested").
		Scan(ctx, &rows)
	if err := noRows(err); err != nil {
		return domain.LeaseRenewal{}, fmt.Errorf("renew leases: %w", translate(err))
	}
	var r domain.LeaseRenewal
	renewed := make(map[string]bool, len(rows))
	for _, row := range rows {
		renewed[row.ID] = true
		if row.CancelRequested {
			r.Cancel = append(r.Cancel, row.ID)
		}
	}
	for _, id := range ids {
		if !renewed[id] {
			r.Lost = append(r.Lost, id)
		}
	}
	slices.Sort(r.Cancel)
	slices.Sort(r.Lost)
	r.Lost = slices.Compact(r.Lost)
	return r, nil
}

// ExpireLeases ends every RUNNING command whose lease expired before now as
// INTERRUPTED (with LeaseExpiredReason, finished at now, its lease cleared
// and its owner kept), with LastSeq and OutputBytes those of its stored
// output (the bytes it wrote past a cap are unknown), and returns them in ID
// order. Concurrent calls never return the same command twice. Unless audit
// is nil, the entry it makes of each ended command is appended in the same
// transaction.
func (s *Store) ExpireLeases(ctx context.Context, now time.Time, audit func(*domain.Command) *domain.AuditEntry) ([]*domain.Command, error) {
	return s.interrupt(ctx, now, LeaseExpiredReason, audit, func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("lease_expires_at < ?", storedTime(now))
	})
}

// InterruptHeldBy ends every RUNNING command held by one of owners as
// ExpireLeases does, whatever its lease, with TakenOverReason.
func (s *Store) InterruptHeldBy(ctx context.Context, owners []string, now time.Time, audit func(*domain.Command) *domain.AuditEntry) ([]*domain.Command, error) {
	if len(owners) == 0 {
		return nil, nil
	}
	return s.interrupt(ctx, now, TakenOverReason, audit, func(q *bun.SelectQuery) *bun.SelectQuery {
		return q.Where("owner IN (?)", bun.List(owners))
	})
}

// ReleaseUnstarted puts the commands RUNNING under owner that are not among
// started back in the queue (QUEUED, without owner, lease or start), or ends
// them CANCELLED at now if their cancellation was requested, and returns
// them in ID order. One with an environment cannot go back: the claim
// cleared its values, so it ends INTERRUPTED (EnvLostReason) at now.
func (s *Store) ReleaseUnstarted(ctx context.Context, owner string, started []string, now time.Time) ([]*domain.Command, error) {
	if owner == "" {
		return nil, domain.Errorf(domain.EINVALID, "release: the owner is empty")
	}
	var rows []*commandRow
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		rows = nil
		update := func(status domain.CommandStatus) ([]*commandRow, error) {
			q := tx.NewUpdate().Model((*commandRow)(nil)).
				Set("owner = ''").
				Set("lease_expires_at = NULL").
				Set("started_at = NULL").
				Set("status = ?", string(status)).
				Where("status = ?", string(domain.CommandRunning)).
				Where("owner = ?", owner)
			switch status {
			case domain.CommandQueued:
				q = q.Where("cancel_requested = ?", false).Where("env = ?", s.emptyEnv())
			case domain.CommandCancelled:
				q = q.Set("finished_at = ?", storedTime(now)).Where("cancel_requested = ?", true)
			default:
				q = q.Set("finished_at = ?", storedTime(now)).Set("reason = ?", EnvLostReason)
			}
			if len(started) > 0 {
				q = q.Where("id NOT IN (?)", bun.List(started))
			}
			var out []*commandRow
			if err := noRows(q.Returning("*").Scan(ctx, &out)); err != nil {
				return nil, fmt.Errorf("release unstarted commands: %w", err)
			}
			return out, nil
		}
		for _, status := range []domain.CommandStatus{domain.CommandQueued, domain.CommandCancelled, domain.CommandInterrupted} {
			changed, err := update(status)
			if err != nil {
				return err
			}
			rows = append(rows, changed...)
			if status != domain.CommandQueued {
				if err := s.appendCommandEvents(ctx, tx, changed...); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rows, func(a, b *commandRow) int { return cmp.Compare(a.ID, b.ID) })
	return commandsOf(rows), nil
}

// EnvLostReason is the Reason of a command that ReleaseUnstarted ended
// because the claim that never reached its dispatcher cleared its env values.
const EnvLostReason = "interrupted before it started: the claim that took it cleared its environment values, and its reply was lost; submit it again"

// envRow is a command's environment as a claim reads it before clearing it.
type envRow struct {
	ID  string            `bun:"id"`
	Env map[string]string `bun:"env"`
}

// emptyEnv is the stored env of a command without variables.
func (s *Store) emptyEnv() bun.Safe {
	if s.isPostgres() {
		return bun.Safe("'{}'::jsonb")
	}
	return bun.Safe("'{}'")
}

// envNamesOnly is the env of the command being updated with every value
// made empty: what storage keeps of it once the command has started.
func (s *Store) envNamesOnly() bun.Safe {
	if s.isPostgres() {
		return bun.Safe("COALESCE((SELECT jsonb_object_agg(e.key, '') FROM jsonb_each(c.env) AS e), '{}'::jsonb)")
	}
	return bun.Safe("(SELECT json_group_object(e.key, '') FROM json_each(c.env) AS e)")
}

// TakenOverReason is the Reason of a command that InterruptHeldBy ended.
const TakenOverReason = "interrupted: the rdev running it stopped, and its successor took its commands over"

// RunningOwners returns the owners of RUNNING commands, sorted.
func (s *Store) RunningOwners(ctx context.Context) ([]string, error) {
	var owners []string
	// Running commands are those with a lease, which the running index has.
	err := s.db.NewSelect().Model((*commandRow)(nil)).Distinct().Column("owner").
		Where("lease_expires_at IS NOT NULL").
		OrderExpr("owner").
		Scan(ctx, &owners)
	if err := noRows(err); err != nil {
		return nil, fmt.Errorf("running owners: %w", translate(err))
	}
	return owners, nil
}

// interrupt ends the RUNNING commands that which selects as INTERRUPTED with
// reason, with their webhook events and, unless audit is nil, their audit
// entries, in one transaction.
func (s *Store) interrupt(ctx context.Context, now time.Time, reason string, audit func(*domain.Command) *domain.AuditEntry, which func(*bun.SelectQuery) *bun.SelectQuery) ([]*domain.Command, error) {
	now = storedTime(now)
	var cmds []*domain.Command
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if cmds, err = s.interruptIn(ctx, tx, now, reason, which); err != nil {
			return err
		}
		events := make([]domain.WebhookEvent, len(cmds))
		for i, c := range cmds {
			events[i] = domain.CommandEvent(c)
		}
		if err := s.appendWebhookEvents(ctx, tx, events...); err != nil || audit == nil {
			return err
		}
		entries := make([]*domain.AuditEntry, len(cmds))
		for i, c := range cmds {
			entries[i] = audit(c)
		}
		return s.appendAudit(ctx, tx, entries...)
	})
	if err != nil {
		return nil, err
	}
	return cmds, nil
}

func (s *Store) interruptIn(ctx context.Context, tx bun.Tx, now time.Time, reason string, which func(*bun.SelectQuery) *bun.SelectQuery) ([]*domain.Command, error) {
	var rows []*commandRow
	err := tx.NewUpdate().Model((*commandRow)(nil)).
		Set("status = ?", string(domain.CommandInterrupted)).
		Set("reason = ?", reason).
		Set("finished_at = ?", now).
		Set("lease_expires_at = NULL").
		// The stored output's, or the row's if it is higher: fenced writes
		// keep the row current and lock it, and on Postgres a write that
		// committed while this statement waited for the row is counted in
		// the row, though not seen by the subqueries' snapshot.
		Set("last_seq = ?(?TableAlias.last_seq, (SELECT coalesce(max(seq), 0) FROM command_output WHERE command_id = ?TableAlias.id))", s.greatest()).
		Set("output_bytes = ?(?TableAlias.output_bytes, (SELECT coalesce(sum(?), 0) FROM command_output WHERE command_id = ?TableAlias.id))", s.greatest(), s.outputSize()).
		Where("id IN (?)", s.lockedInIDOrder(which(tx.NewSelect().Model((*commandRow)(nil)).
			Column("id").
			Where("status = ?", string(domain.CommandRunning))), true)).
		Where("status = ?", string(domain.CommandRunning)).
		Returning("*").
		Scan(ctx, &rows)
	if err := noRows(err); err != nil {
		return nil, fmt.Errorf("interrupt commands: %w", err)
	}
	slices.SortFunc(rows, func(a, b *commandRow) int { return cmp.Compare(a.ID, b.ID) })
	return commandsOf(rows), nil
}

// greatest names the SQL function of the largest of its arguments.
func (s *Store) greatest() bun.Safe {
	if s.isPostgres() {
		return bun.Safe("GREATEST")
	}
	return bun.Safe("max")
}

// lockedInIDOrder makes q, a subquery of IDs for a multi-row UPDATE, lock its
// rows in ID order on Postgres (skipping rows others hold, if skip), so two
// such UPDATEs never deadlock by locking shared rows in opposite orders.
func (s *Store) lockedInIDOrder(q *bun.SelectQuery, skip bool) *bun.SelectQuery {
	if !s.isPostgres() {
		return q
	}
	q = q.OrderExpr("id")
	if skip {
		return q.For("UPDATE SKIP LOCKED")
	}
	return q.For("UPDATE")
}

// RequestCancel cancels a QUEUED command at once (CANCELLED with reason,
// finished at now, its env values cleared as a start clears them), or flags a RUNNING one for its owner to stop, recording
// reason (a RUNNING command already flagged is left as it is). It returns the
// command as it is after the change; ECONFLICT if it already ended;
// ENOTFOUND if there is no such command. The command's row is locked while
// it decides (on SQLite, the database is), so a concurrent claim or finish
// happens wholly before or after it. audit, unless nil, is appended in the
// same transaction as the change.
func (s *Store) RequestCancel(ctx context.Context, id, reason string, now time.Time, audit *domain.AuditEntry) (*domain.Command, error) {
	var out *commandRow
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		row := new(commandRow)
		q := tx.NewSelect().Model(row).Where("?TableAlias.id = ?", id)
		if s.isPostgres() {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); errors.Is(err, sql.ErrNoRows) {
			return commandNotFound(id)
		} else if err != nil {
			return fmt.Errorf("cancel command %s: %w", id, err)
		}
		// By ID alone, for the primary key (see ClaimCommands).
		u := tx.NewUpdate().Model((*commandRow)(nil)).Where("id = ?", id).Returning("*")
		switch domain.CommandStatus(row.Status) {
		case domain.CommandQueued:
			u = u.Set("status = ?", string(domain.CommandCancelled)).
				Set("reason = ?", reason).
				Set("finished_at = ?", storedTime(now)).
				Set("env = ?", s.envNamesOnly())
		case domain.CommandRunning:
			if row.CancelRequested {
				out = row
				return s.appendAudit(ctx, tx, audit)
			}
			u = u.Set("cancel_requested = ?", true).Set("reason = ?", reason)
		default:
			return domain.Errorf(domain.ECONFLICT, "command %s already ended (%s)", id, row.Status)
		}
		var rows []*commandRow
		if err := noRows(u.Scan(ctx, &rows)); err != nil {
			return fmt.Errorf("cancel command %s: %w", id, err)
		}
		if len(rows) != 1 {
			return fmt.Errorf("cancel command %s: updated %d rows", id, len(rows))
		}
		out = rows[0]
		entries := []*domain.AuditEntry{audit}
		if domain.CommandStatus(out.Status) == domain.CommandCancelled {
			if err := s.appendCommandEvents(ctx, tx, out); err != nil {
				return err
			}
			if audit != nil {
				// Its end, as every command's end is recorded.
				c := out.command()
				entries = append(entries, domain.FinishEntry(c, domain.Finish{Status: c.Status, Reason: reason, FinishedAt: now}))
			}
		}
		return s.appendAudit(ctx, tx, entries...)
	})
	if err != nil {
		return nil, err
	}
	return out.command(), nil
}

// noRows treats a query that matched nothing as a success: bun's Scan into a
// slice may report sql.ErrNoRows.
func noRows(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return err
}
