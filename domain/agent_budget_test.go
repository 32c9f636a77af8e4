package domain

import (
	"slices"
	"strings"
	"testing"
)

// A run is given what is left of its project's and its key's daily
// budgets as its maxCostUsd, lowered from what it asks for, and refused,
// with nothing queued, once either is spent.
func TestAgentService_DailyBudgets(t *testing.T) {
	budgetOf := func(t *testing.T, e *commandEnv, run *AgentRun) string {
		t.Helper()
		for _, a := range e.repo.command(run.Command.ID).Argv {
			if v, ok := strings.CutPrefix(a, "--max-budget-usd="); ok {
				return v
			}
		}
		return ""
	}
	for _, tt := range []struct {
		name    string
		budgets AgentBudgets
		spent   AgentSpend
		asked   float64
		want    string // the run's --max-budget-usd, or the refusal's words
		refused bool
	}{
		{"NoBudgets", AgentBudgets{}, AgentSpend{ProjectUSD: 99}, 0, "", false},
		{"ProjectLeft", AgentBudgets{PerProjectUSD: 1}, AgentSpend{ProjectUSD: 0.25}, 0, "0.75", false},
		{"AskedLess", AgentBudgets{PerProjectUSD: 1}, AgentSpend{ProjectUSD: 0.25}, 0.5, "0.5", false},
		{"AskedMore", AgentBudgets{PerProjectUSD: 1}, AgentSpend{ProjectUSD: 0.25}, 5, "0.75", false},
		{"KeyLeft", AgentBudgets{PerProjectUSD: 1, PerKeyUSD: 0.5}, AgentSpend{ProjectUSD: 0.25, KeyUSD: 0.375}, 0, "0.125", false},
		{"ProjectSpent", AgentBudgets{PerProjectUSD: 1}, AgentSpend{ProjectUSD: 1}, 0, "project web has spent $1.0000 of its daily $1", true},
		{"KeySpent", AgentBudgets{PerKeyUSD: 0.5}, AgentSpend{KeyUSD: 0.6}, 0, "this key has spent $0.6000 of its daily $0.5", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, s := newAgentEnv(t)
			runs := &agentRuns{spend: tt.spent}
			s.RecordSummariesIn(runs)
			s.LimitDailySpend(tt.budgets)
			run, err := s.Run(keyContext(t, writerKey), RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi", MaxCostUSD: tt.asked}})
			if tt.refused {
				if ErrorCode(err) != ECONFLICT || !strings.Contains(ErrorMessage(err), tt.want) {
					t.Fatalf("Run = %v, %v; want ECONFLICT saying %q", run, err, tt.want)
				}
				if n := e.repo.len(); n != 0 {
					t.Errorf("%d commands queued, want none", n)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := budgetOf(t, e, run); got != tt.want {
				t.Errorf("the run's --max-budget-usd = %q, want %q", got, tt.want)
			}
			if tt.budgets != (AgentBudgets{}) && (len(runs.spendAsked) != 1 || !strings.HasSuffix(runs.spendAsked[0], " 00:00:00 web "+writerKey.ID)) {
				t.Errorf("spending read as %q, want today's of web and the key", runs.spendAsked)
			}
		})
	}
	t.Run("RefusalAudited", func(t *testing.T) {
		e, s := newAgentEnv(t)
		s.RecordSummariesIn(&agentRuns{spend: AgentSpend{ProjectUSD: 2}})
		s.LimitDailySpend(AgentBudgets{PerProjectUSD: 1})
		if _, err := s.Run(keyContext(t, writerKey), RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi"}}); ErrorCode(err) != ECONFLICT {
			t.Fatalf("Run: %v", err)
		}
		entries := e.repo.audit.all()
		if !slices.ContainsFunc(entries, func(a *AuditEntry) bool {
			return a.Action == AuditCommandExecute && a.Outcome == AuditFailed && a.ErrorCode == ECONFLICT
		}) {
			t.Errorf("audit = %+v, want the refusal", entries)
		}
	})
}
