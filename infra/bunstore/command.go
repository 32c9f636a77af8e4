package bunstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

var _ domain.CommandRepository = (*Store)(nil)

// CreateCommand inserts c as QUEUED (c.Status must be QUEUED or empty) and,
// in the same transaction, writes its command.queued outbox rows and appends
// audit (unless it is nil); c is not changed.
// It returns ECONFLICT if c.KeyID already has a command with c.ClientToken
// (or one with c.ID exists), and EINVALID for another status.
func (s *Store) CreateCommand(ctx context.Context, c *domain.Command, audit *domain.AuditEntry) error {
	if c.Status != "" && c.Status != domain.CommandQueued {
		return domain.Errorf(domain.EINVALID, "command %s: a new command is QUEUED, not %s", c.ID, c.Status)
	}
	row := newCommandRow(c)
	row.Status = string(domain.CommandQueued)
	row.LeaseExpiresAt = nil // a lease exists only while a command runs
	insert := func(ctx context.Context, db bun.IDB) error {
		if _, err := db.NewInsert().Model(row).Exec(ctx); err != nil {
			if isUniqueViolation(err) {
				return errCreateConflict
			}
			return fmt.Errorf("insert command %s: %w", c.ID, translate(err))
		}
		return nil
	}
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := insert(ctx, tx); err != nil {
			return err
		}
		if err := s.appendCommandEvents(ctx, tx, row); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, audit)
	})
	if errors.Is(err, errCreateConflict) {
		// Read after the rollback: a transaction aborted on Postgres
		// answers no more queries.
		return s.createConflict(ctx, c)
	}
	return err
}

// errCreateConflict reports a unique violation inside CreateCommand's
// transaction; createConflict says which, once it has ended.
var errCreateConflict = errors.New("command violates a unique constraint")

// createConflict says which unique constraint a new command violated.
func (s *Store) createConflict(ctx context.Context, c *domain.Command) error {
	if c.ClientToken != "" {
		if other, err := s.FindCommandByClientToken(ctx, c.KeyID, c.ClientToken); err == nil && other.ID != c.ID {
			return domain.Errorf(domain.ECONFLICT, "the key already has command %s with client token %q", other.ID, c.ClientToken)
		}
	}
	if c.AgentSession != "" {
		for _, st := range []domain.CommandStatus{domain.CommandRunning, domain.CommandQueued} {
			active, err := s.FindCommands(ctx, domain.CommandFilter{ProjectID: c.ProjectID, AgentSession: c.AgentSession, Status: st, Limit: 1})
			if err == nil && len(active) > 0 && active[0].ID != c.ID {
				return domain.Errorf(domain.ECONFLICT, "agent session %q of project %s already has active run %s", c.AgentSession, c.ProjectID, active[0].ID)
			}
		}
	}
	return domain.Errorf(domain.ECONFLICT, "command %q already exists", c.ID)
}

// FindCommandByID returns the command with the given ID. It returns
// ENOTFOUND if there is none.
func (s *Store) FindCommandByID(ctx context.Context, id string) (*domain.Command, error) {
	row := new(commandRow)
	err := s.db.NewSelect().Model(row).Where("?TableAlias.id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, commandNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("find command %s: %w", id, translate(err))
	}
	return row.command(), nil
}

// FindCommandByClientToken returns the command keyID submitted with token. It
// returns ENOTFOUND if there is none (always, for an empty token).
func (s *Store) FindCommandByClientToken(ctx context.Context, keyID, token string) (*domain.Command, error) {
	notFound := domain.Errorf(domain.ENOTFOUND, "no command with client token %q", token)
	if token == "" {
		return nil, notFound
	}
	row := new(commandRow)
	err := s.db.NewSelect().Model(row).
		Where("?TableAlias.key_id = ?", keyID).
		Where("?TableAlias.client_token = ?", token).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound
	} else if err != nil {
		return nil, fmt.Errorf("find command by client token: %w", translate(err))
	}
	return row.command(), nil
}

// FindCommands returns the commands that match f, newest (highest ID)
// first: those with IDs below f.BeforeID if it is set, at most f.Limit of
// them (all when f.Limit is 0).
func (s *Store) FindCommands(ctx context.Context, f domain.CommandFilter) ([]*domain.Command, error) {
	var rows []*commandRow
	q := s.db.NewSelect().Model(&rows).OrderExpr("?TableAlias.id DESC")
	if f.ProjectID != "" {
		q = q.Where("?TableAlias.project_id = ?", f.ProjectID)
	}
	if f.ProjectIDs != nil {
		if len(f.ProjectIDs) == 0 {
			return []*domain.Command{}, nil
		}
		q = q.Where("?TableAlias.project_id IN (?)", bun.List(f.ProjectIDs))
	}
	if f.Status != "" {
		q = q.Where("?TableAlias.status = ?", string(f.Status))
	}
	if f.AgentSession != "" {
		q = q.Where("?TableAlias.agent_session = ?", f.AgentSession)
	}
	if f.BeforeID != "" {
		q = q.Where("?TableAlias.id < ?", f.BeforeID)
	}
	if !f.ChangedSince.IsZero() {
		t := storedTime(f.ChangedSince)
		q = q.Where("(?TableAlias.created_at >= ? OR ?TableAlias.started_at >= ? OR ?TableAlias.finished_at >= ?)", t, t, t)
	}
	if f.Limit > 0 {
		q = q.Limit(int64(f.Limit))
	}
	if err := q.Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find commands: %w", translate(err))
	}
	return commandsOf(rows), nil
}

// projectsPerQuery bounds the UNION ALL branches of one query of
// FindCommandsForProjects (SQLite allows 500).
const projectsPerQuery = 200

// FindCommandsForProjects returns, for each of projectIDs that has any, its
// newest commands: at most limit (all when limit is 0), newest first, only
// those in status unless it is "". Each project's commands are read by its
// own branch of one UNION ALL query, from the (project_id, id) index, so a
// project with a long history costs no more than one with limit commands.
func (s *Store) FindCommandsForProjects(ctx context.Context, projectIDs []string, status domain.CommandStatus, limit int) (map[string][]*domain.Command, error) {
	out := map[string][]*domain.Command{}
	ids := slices.Compact(slices.Sorted(slices.Values(projectIDs)))
	for chunk := range slices.Chunk(ids, projectsPerQuery) {
		rows, err := s.findForProjects(ctx, chunk, status, limit)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			out[r.ProjectID] = append(out[r.ProjectID], r.command())
		}
	}
	return out, nil
}

// findForProjects runs one query of FindCommandsForProjects. Rows come back
// by project, newest first within one.
func (s *Store) findForProjects(ctx context.Context, projectIDs []string, status domain.CommandStatus, limit int) ([]*commandRow, error) {
	gen := s.db.QueryGen()
	var query []byte
	for i, id := range projectIDs {
		q := s.db.NewSelect().Model((*commandRow)(nil)).
			Where("?TableAlias.project_id = ?", id).
			OrderExpr("?TableAlias.id DESC")
		if status != "" {
			q = q.Where("?TableAlias.status = ?", string(status))
		}
		if limit > 0 {
			q = q.Limit(int64(limit))
		}
		if i > 0 {
			query = append(query, " UNION ALL "...)
		}
		// Wrapped, because SQLite allows no ORDER BY or LIMIT on a branch of
		// a compound SELECT.
		query = append(query, "SELECT * FROM ("...)
		var err error
		if query, err = q.AppendQuery(gen, query); err != nil {
			return nil, fmt.Errorf("find commands for projects: %w", translate(err))
		}
		query = fmt.Appendf(query, ") AS p%d", i)
	}
	var rows []*commandRow
	if err := noRows(s.db.NewRaw(string(query)).Scan(ctx, &rows)); err != nil {
		return nil, fmt.Errorf("find commands for projects: %w", translate(err))
	}
	slices.SortStableFunc(rows, func(a, b *commandRow) int {
		return cmp.Or(strings.Compare(a.ProjectID, b.ProjectID), strings.Compare(b.ID, a.ID))
	})
	return rows, nil
}

// CountQueued counts the QUEUED commands keyID submitted.
func (s *Store) CountQueued(ctx context.Context, keyID string) (int, error) {
	n, err := s.db.NewSelect().Model((*commandRow)(nil)).
		Where("key_id = ?", keyID).
		Where("status = ?", string(domain.CommandQueued)).
		Count(ctx)
	if err != nil {
		return 0, fmt.Errorf("count queued commands: %w", translate(err))
	}
	return int(n), nil
}

// QueueStats counts QUEUED commands by priority (every known priority has an
// entry, 0 if none is queued) and RUNNING commands. Both counts read only
// the small partial indexes of queued and running commands.
func (s *Store) QueueStats(ctx context.Context) (domain.QueueStats, error) {
	var counts []struct {
		Status   string `bun:"status"`
		Priority int    `bun:"priority"`
		N        int    `bun:"n"`
	}
	err := s.db.NewRaw(`SELECT ? AS status, priority, count(*) AS n FROM commands WHERE status = ? GROUP BY priority
		UNION ALL
		SELECT ? AS status, 0 AS priority, count(*) AS n FROM commands WHERE lease_expires_at IS NOT NULL`,
		string(domain.CommandQueued), string(domain.CommandQueued), string(domain.CommandRunning)).
		Scan(ctx, &counts)
	if err := noRows(err); err != nil {
		return domain.QueueStats{}, fmt.Errorf("queue stats: %w", translate(err))
	}
	st := domain.QueueStats{Queued: make(map[domain.Priority]int, len(domain.Priorities))}
	for _, p := range domain.Priorities {
		st.Queued[p] = 0
	}
	for _, c := range counts {
		if c.Status == string(domain.CommandRunning) {
			st.Running += c.N
		} else {
			st.Queued[domain.Priority(c.Priority)] += c.N
		}
	}
	return st, nil
}

func commandNotFound(id string) error {
	return domain.Errorf(domain.ENOTFOUND, "command %q not found", id)
}
