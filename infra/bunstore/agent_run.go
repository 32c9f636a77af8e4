package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

var _ domain.AgentRunRepository = (*Store)(nil)

// agentRunRow is a row of agent_runs: the stored summary of an ended
// agent run.
type agentRunRow struct {
	bun.BaseModel `bun:"table:agent_runs,alias:ar"`

	CommandID       string    `bun:"command_id,pk"`
	ProjectID       string    `bun:"project_id"`
	SessionID       string    `bun:"session_id"`
	Status          string    `bun:"status"`
	Result          string    `bun:"result"`
	CostUSD         float64   `bun:"cost_usd"`
	InputTokens     int64     `bun:"input_tokens"`
	OutputTokens    int64     `bun:"output_tokens"`
	CacheReadTokens int64     `bun:"cache_read_tokens"`
	NumTurns        int       `bun:"num_turns"`
	DurationMs      int64     `bun:"duration_ms"`
	Seq             int64     `bun:"seq"`
	Index           int       `bun:"event_index"`
	EndedAt         time.Time `bun:"ended_at"`
}

// SaveAgentSummary stores s unless its command has a summary already, in
// which case it changes nothing.
func (s *Store) SaveAgentSummary(ctx context.Context, sum *domain.AgentSummary) error {
	f := sum.Finished
	row := &agentRunRow{
		CommandID: sum.CommandID, ProjectID: sum.ProjectID, SessionID: f.SessionID, Status: string(f.Status), Result: f.Result,
		CostUSD: f.CostUSD, InputTokens: f.InputTokens, OutputTokens: f.OutputTokens, CacheReadTokens: f.CacheReadTokens,
		NumTurns: f.NumTurns, DurationMs: f.DurationMs, Seq: sum.Seq, Index: sum.Index, EndedAt: storedTime(sum.EndedAt),
	}
	if _, err := s.db.NewInsert().Model(row).On("CONFLICT (command_id) DO NOTHING").Exec(ctx); err != nil {
		return fmt.Errorf("save summary of agent run %s: %w", sum.CommandID, translate(err))
	}
	return nil
}

// FindAgentSummary returns the summary of run commandID, or ENOTFOUND.
func (s *Store) FindAgentSummary(ctx context.Context, commandID string) (*domain.AgentSummary, error) {
	row := new(agentRunRow)
	err := s.db.NewSelect().Model(row).Where("?TableAlias.command_id = ?", commandID).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "agent run %s has no stored summary", commandID)
	} else if err != nil {
		return nil, fmt.Errorf("find summary of agent run %s: %w", commandID, translate(err))
	}
	return &domain.AgentSummary{
		CommandID: row.CommandID, ProjectID: row.ProjectID, Seq: row.Seq, Index: row.Index, EndedAt: row.EndedAt.UTC(),
		Finished: domain.AgentFinished{
			Status: domain.AgentStatus(row.Status), Result: row.Result, CostUSD: row.CostUSD,
			InputTokens: row.InputTokens, OutputTokens: row.OutputTokens, CacheReadTokens: row.CacheReadTokens,
			NumTurns: row.NumTurns, DurationMs: row.DurationMs, SessionID: row.SessionID,
		},
	}, nil
}

// agentSessionRow is one session summed over agent_runs.
type agentSessionRow struct {
	SessionID       string    `bun:"session_id"`
	Runs            int       `bun:"runs"`
	CostUSD         float64   `bun:"cost_usd"`
	InputTokens     int64     `bun:"input_tokens"`
	OutputTokens    int64     `bun:"output_tokens"`
	CacheReadTokens int64     `bun:"cache_read_tokens"`
	LastActiveAt    time.Time `bun:"last_active_at"`
}

// FindAgentSessions sums the stored summaries of projectID by session, the
// most recently active session first.
func (s *Store) FindAgentSessions(ctx context.Context, projectID string, limit int) ([]*domain.AgentSession, error) {
	var rows []agentSessionRow
	err := s.db.NewSelect().TableExpr("agent_runs").
		ColumnExpr("session_id, COUNT(*) AS runs, SUM(cost_usd) AS cost_usd").
		ColumnExpr("SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, SUM(cache_read_tokens) AS cache_read_tokens").
		ColumnExpr("MAX(ended_at) AS last_active_at").
		Where("project_id = ? AND session_id <> ''", projectID).
		Group("session_id").
		OrderExpr("last_active_at DESC, session_id").
		Limit(int64(limit)).
		Scan(ctx, &rows)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find agent sessions of %s: %w", projectID, translate(err))
	}
	out := make([]*domain.AgentSession, 0, len(rows))
	for _, r := range rows {
		out = append(out, &domain.AgentSession{
			ID: r.SessionID, ProjectID: projectID, Runs: r.Runs, CostUSD: r.CostUSD,
			InputTokens: r.InputTokens, OutputTokens: r.OutputTokens, CacheReadTokens: r.CacheReadTokens,
			LastActiveAt: r.LastActiveAt.UTC(),
		})
	}
	return out, nil
}

// AgentSpend sums the cost of the runs that ended at or after since: of
// project projectID, and of those key keyID queued.
func (s *Store) AgentSpend(ctx context.Context, since time.Time, projectID, keyID string) (domain.AgentSpend, error) {
	var out domain.AgentSpend
	err := s.db.NewSelect().TableExpr("agent_runs AS a").
		Join("JOIN commands AS c ON c.id = a.command_id").
		ColumnExpr("COALESCE(SUM(CASE WHEN a.project_id = ? THEN a.cost_usd ELSE 0.0 END), 0.0)", projectID).
		ColumnExpr("COALESCE(SUM(CASE WHEN c.key_id = ? THEN a.cost_usd ELSE 0.0 END), 0.0)", keyID).
		Where("a.ended_at >= ?", storedTime(since)).
		Where("a.project_id = ? OR c.key_id = ?", projectID, keyID).
		Scan(ctx, &out.ProjectUSD, &out.KeyUSD)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return domain.AgentSpend{}, fmt.Errorf("sum agent spending of %s: %w", projectID, translate(err))
	}
	return out, nil
}
