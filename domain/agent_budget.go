package domain

import (
	"context"
	"math"
	"time"
)

// AgentBudgets are daily limits on what agent runs spend, in US dollars as
// the agents count their cost, per project and per API key; 0 is no limit.
// A day is a UTC day.
type AgentBudgets struct {
	PerProjectUSD float64
	PerKeyUSD     float64
}

// AgentSpend is what agent runs that ended since a time spent: those of a
// project, and those of a key.
type AgentSpend struct {
	ProjectUSD float64
	KeyUSD     float64
}

// LimitDailySpend makes the service hold agent runs to b: a run whose
// project or key has spent its budget today is refused (ECONFLICT: the
// budget is spent until the day ends, which no retry changes),
// and any other is given at most what is left of it as its maxCostUsd.
// It needs RecordSummariesIn, where the spending is read. Call it before
// the service is used.
func (s *AgentService) LimitDailySpend(b AgentBudgets) {
	s.budgets = b
}

// capCost returns the maxCostUsd of a run of in by the caller: the one it
// asks for, lowered to what is left of the daily budgets of its project
// and key; ECONFLICT when either is spent. Spending counts the runs
// that have ended, so runs started together may pass a budget by what
// each was given.
func (s *AgentService) capCost(ctx context.Context, in RunAgent) (float64, error) {
	b, asked := s.budgets, in.Request.MaxCostUSD
	if s.runs == nil || (b.PerProjectUSD <= 0 && b.PerKeyUSD <= 0) {
		return asked, nil
	}
	caller, err := Authorize(ctx, ScopeCommandsWrite)
	if err != nil {
		return 0, err
	}
	day := time.Now().UTC().Truncate(24 * time.Hour)
	spent, err := s.runs.AgentSpend(ctx, day, in.ProjectID, caller.KeyID())
	if err != nil {
		return 0, err
	}
	left := math.Inf(1)
	if b.PerProjectUSD > 0 {
		if spent.ProjectUSD >= b.PerProjectUSD {
			return 0, Errorf(ECONFLICT, "agent budget: project %s has spent $%.4f of its daily $%g; runs start again at 00:00 UTC", Clip(in.ProjectID), spent.ProjectUSD, b.PerProjectUSD)
		}
		left = b.PerProjectUSD - spent.ProjectUSD
	}
	if b.PerKeyUSD > 0 && caller.KeyID() != "" {
		if spent.KeyUSD >= b.PerKeyUSD {
			return 0, Errorf(ECONFLICT, "agent budget: this key has spent $%.4f of its daily $%g; runs start again at 00:00 UTC", spent.KeyUSD, b.PerKeyUSD)
		}
		left = min(left, b.PerKeyUSD-spent.KeyUSD)
	}
	if asked > 0 && asked <= left {
		return asked, nil
	}
	return left, nil
}
