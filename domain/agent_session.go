package domain

import (
	"context"
	"time"
)

// AgentSummary is what is kept of an agent run once its command ended: the
// agent's own summary (AgentFinished), where in the output it came, the
// run's project and when its command ended. It is stored once per run.
type AgentSummary struct {
	CommandID string
	ProjectID string
	Finished  AgentFinished
	// Seq and Index place the AgentFinished event in the run's events.
	Seq     int64
	Index   int
	EndedAt time.Time
}

// AgentSession sums the stored summaries of the runs of one agent session
// in one project.
type AgentSession struct {
	// ID is the agent's session ID.
	ID              string
	ProjectID       string
	Runs            int
	CostUSD         float64
	InputTokens     int64
	OutputTokens    int64
	CacheReadTokens int64
	// LastActiveAt is when the session's latest run ended.
	LastActiveAt time.Time
}

// AgentRunRepository stores the summaries of agent runs that ended.
type AgentRunRepository interface {
	// SaveAgentSummary stores s unless its command has a summary already;
	// then it changes nothing and returns nil (a summary is stored at most
	// once).
	SaveAgentSummary(ctx context.Context, s *AgentSummary) error
	// FindAgentSummary returns the summary of run commandID, or ENOTFOUND.
	FindAgentSummary(ctx context.Context, commandID string) (*AgentSummary, error)
	// FindAgentSessions returns the sessions of projectID's stored
	// summaries that name one, the most recently active first (then by ID),
	// at most limit.
	FindAgentSessions(ctx context.Context, projectID string, limit int) ([]*AgentSession, error)
	// AgentSpend returns the cost of the stored summaries of runs that
	// ended at or after since: of project projectID's runs, and of those
	// key keyID queued.
	AgentSpend(ctx context.Context, since time.Time, projectID, keyID string) (AgentSpend, error)
}

// The bounds of AgentService.Sessions' first.
const (
	defaultAgentSessions = 20
	maxAgentSessions     = 100
)

// RecordSummariesIn makes the service keep the summary of each agent run
// that ends in runs (see Record), and read runs' summaries from there.
// Call it before the service is used.
func (s *AgentService) RecordSummariesIn(runs AgentRunRepository) {
	s.runs = runs
}

// Record stores the summary of c, an ended command, if it is an agent run
// whose output holds one; anything else is left alone. It is meant for the
// dispatcher's end of a command (DispatcherConfig.Finished): the command's
// output is all stored by then. A summary is stored at most once; an
// error says only that this one was not stored, never that the command
// failed.
func (s *AgentService) Record(ctx context.Context, c *Command) error {
	if s.runs == nil || c.AgentProtocol == "" || !c.Status.Final() {
		return nil
	}
	run, err := s.summarize(ctx, c, false)
	if err != nil || run.Finished == nil {
		return err
	}
	sum := &AgentSummary{
		CommandID: c.ID, ProjectID: c.ProjectID, Finished: *run.Finished,
		Seq: run.FinishedAt.Seq, Index: run.FinishedAt.Index, EndedAt: s.commands.now().UTC(),
	}
	if c.FinishedAt != nil {
		sum.EndedAt = c.FinishedAt.UTC()
	}
	return s.runs.SaveAgentSummary(ctx, sum)
}

// Sessions returns the agent sessions of project projectID, the most
// recently active first, at most first (20 if nil): each with its number of
// runs and what they cost, summed over the runs whose summaries are stored.
// It needs commands:read; ENOTFOUND for a project outside the caller's
// project scope, EINVALID for first out of 1..100.
func (s *AgentService) Sessions(ctx context.Context, projectID string, first *int) ([]*AgentSession, error) {
	caller, err := Authorize(ctx, ScopeCommandsRead)
	if err != nil {
		return nil, err
	}
	limit := defaultAgentSessions
	if first != nil {
		if *first < 1 || *first > maxAgentSessions {
			return nil, Errorf(EINVALID, "first: must be 1 to %d, got %d", maxAgentSessions, *first)
		}
		limit = *first
	}
	if err := admitProject(ctx, s.commands.projects, caller, projectID); err != nil {
		return nil, err
	}
	if s.runs == nil {
		return []*AgentSession{}, nil
	}
	return s.runs.FindAgentSessions(ctx, projectID, limit)
}

// storedSummary returns the stored summary of c, nil if there is none (or
// it could not be read: the output says the same).
func (s *AgentService) storedSummary(ctx context.Context, c *Command) *AgentSummary {
	if s.runs == nil || !c.Status.Final() {
		return nil
	}
	sum, err := s.runs.FindAgentSummary(ctx, c.ID)
	if err != nil {
		return nil
	}
	return sum
}
