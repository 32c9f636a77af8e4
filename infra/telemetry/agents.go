package telemetry

import (
	"context"

	"github.com/rdev-hq/rdev/domain"
)

// MaxProjectLabels is how many distinct projects get their own label value
// in the agent metrics; later ones are counted as "other".
const MaxProjectLabels = 500

// isProjectLabel reports whether s is a valid project ID short enough to be
// a label value.
func isProjectLabel(s string) bool {
	return len(s) <= maxLabelLen && domain.ValidateProjectID(s) == nil
}

// AgentRunRepository is a domain.AgentRunRepository that counts each agent
// run summary it stores: runs, cost and tokens, by project.
type AgentRunRepository struct {
	domain.AgentRunRepository
	m *Metrics
}

var _ domain.AgentRunRepository = AgentRunRepository{}

// AgentRunRepository wraps r.
func (m *Metrics) AgentRunRepository(r domain.AgentRunRepository) AgentRunRepository {
	return AgentRunRepository{AgentRunRepository: r, m: m}
}

// SaveAgentSummary saves s and, if that worked, counts it. Each run's end is
// recorded once (domain.AgentService.Record), so each is counted once.
func (r AgentRunRepository) SaveAgentSummary(ctx context.Context, s *domain.AgentSummary) error {
	if err := r.AgentRunRepository.SaveAgentSummary(ctx, s); err != nil {
		return err
	}
	r.m.agentRunEnded(s)
	return nil
}

func (m *Metrics) agentRunEnded(s *domain.AgentSummary) {
	project, f := m.projects.value(s.ProjectID), s.Finished
	m.agentRuns.WithLabelValues(project, string(f.Status)).Inc()
	if f.CostUSD > 0 {
		m.agentCost.WithLabelValues(project).Add(f.CostUSD)
	}
	for kind, n := range map[string]int64{"input": f.InputTokens, "output": f.OutputTokens, "cache_read": f.CacheReadTokens} {
		if n > 0 {
			m.agentTokens.WithLabelValues(project, kind).Add(float64(n))
		}
	}
}
