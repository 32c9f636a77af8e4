package telemetry_test

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/telemetry"
)

// summaries is a domain.AgentRunRepository whose saves fail with err.
type summaries struct {
	domain.AgentRunRepository
	err error
}

func (s summaries) SaveAgentSummary(context.Context, *domain.AgentSummary) error { return s.err }

func TestAgentRunRepository_SaveAgentSummary(t *testing.T) {
	m := telemetry.New()
	sum := func(project string, cost float64) *domain.AgentSummary {
		return &domain.AgentSummary{CommandID: "c", ProjectID: project, Finished: domain.AgentFinished{
			Status: domain.AgentSucceeded, CostUSD: cost, InputTokens: 100, OutputTokens: 20, CacheReadTokens: 5,
		}}
	}
	repo := m.AgentRunRepository(summaries{})
	for _, s := range []*domain.AgentSummary{sum("web", 0.5), sum("web", 0.25), sum("Not A Project!", 1)} {
		if err := repo.SaveAgentSummary(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	// A summary that was not stored is not counted.
	if err := m.AgentRunRepository(summaries{err: errors.New("down")}).SaveAgentSummary(t.Context(), sum("web", 8)); err == nil {
		t.Fatal("the error was lost")
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"runs{web,SUCCEEDED}", testutil.ToFloat64(m.AgentRuns().WithLabelValues("web", "SUCCEEDED")), 2},
		{"runs{other,SUCCEEDED}", testutil.ToFloat64(m.AgentRuns().WithLabelValues("other", "SUCCEEDED")), 1},
		{"cost{web}", testutil.ToFloat64(m.AgentCost().WithLabelValues("web")), 0.75},
		{"tokens{web,input}", testutil.ToFloat64(m.AgentTokens().WithLabelValues("web", "input")), 200},
		{"tokens{web,output}", testutil.ToFloat64(m.AgentTokens().WithLabelValues("web", "output")), 40},
		{"tokens{web,cache_read}", testutil.ToFloat64(m.AgentTokens().WithLabelValues("web", "cache_read")), 10},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}
