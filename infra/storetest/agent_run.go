package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// TestAgentRunRepository runs the domain.AgentRunRepository contract. newRepo
// must return an empty repository that no other subtest uses.
func TestAgentRunRepository(t *testing.T, newRepo func(t *testing.T) domain.AgentRunRepository) {
	t.Run("SaveOnce", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		want := summary("r1", "web", "s1", 0.25, at(commandBase))
		want.Finished.Result, want.Finished.NumTurns, want.Finished.DurationMs, want.Seq, want.Index = "ünïcode answer", 3, 1234, 17, 2
		if err := repo.SaveAgentSummary(ctx, want); err != nil {
			t.Fatal(err)
		}
		again := summary("r1", "web", "s1", 9, at(commandBase.Add(time.Hour)))
		if err := repo.SaveAgentSummary(ctx, again); err != nil {
			t.Fatalf("a second summary of one run: %v, want it ignored", err)
		}
		got, err := repo.FindAgentSummary(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("stored summary differs (-saved first +found):\n%s", diff)
		}
		assertUTC(t, "summary", &got.EndedAt)
		if _, err := repo.FindAgentSummary(ctx, "nope"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("FindAgentSummary(nope) = %v, want %s", err, domain.ENOTFOUND)
		}
	})

	t.Run("AgentSpend", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		commands, ok := repo.(domain.CommandRepository)
		if !ok {
			t.Fatal("the repository does not store commands, which AgentSpend joins")
		}
		for i, r := range []struct {
			project, key string
			cost         float64
			ended        time.Time
		}{
			{"web", "k1", 1, commandBase.Add(-time.Minute)}, // before the day
			{"web", "k1", 0.5, commandBase},
			{"web", "k2", 0.25, commandBase.Add(time.Hour)},
			{"api", "k1", 0.125, commandBase.Add(2 * time.Hour)},
			{"api", "k2", 8, commandBase.Add(3 * time.Hour)},
		} {
			c := newCommand(r.project, 100+i)
			c.KeyID = r.key
			mustCreateCommand(t, ctx, commands, c)
			if err := repo.SaveAgentSummary(ctx, summary(c.ID, r.project, "", r.cost, at(r.ended))); err != nil {
				t.Fatal(err)
			}
		}
		got, err := repo.AgentSpend(ctx, at(commandBase), "web", "k1")
		if err != nil {
			t.Fatal(err)
		}
		if want := (domain.AgentSpend{ProjectUSD: 0.75, KeyUSD: 0.625}); got != want {
			t.Errorf("AgentSpend(web, k1) = %+v, want %+v (since the day began: web's runs, and k1's in any project)", got, want)
		}
		if got, err := repo.AgentSpend(ctx, at(commandBase), "nope", "none"); err != nil || got != (domain.AgentSpend{}) {
			t.Errorf("AgentSpend of nothing = %+v, %v", got, err)
		}
	})

	t.Run("FindAgentSessions", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		for _, s := range []*domain.AgentSummary{
			summary("r1", "web", "old", 1, at(commandBase)),
			summary("r2", "web", "new", 0.5, at(commandBase.Add(time.Minute))),
			summary("r3", "web", "old", 0.25, at(commandBase.Add(2*time.Minute))),
			summary("r4", "web", "new", 0.125, at(commandBase.Add(3*time.Minute))),
			summary("r5", "api", "new", 8, at(commandBase.Add(4*time.Minute))), // another project
			summary("r6", "web", "", 16, at(commandBase.Add(5*time.Minute))),   // no session
		} {
			if err := repo.SaveAgentSummary(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		got, err := repo.FindAgentSessions(ctx, "web", 10)
		if err != nil {
			t.Fatal(err)
		}
		want := []*domain.AgentSession{
			{ID: "new", ProjectID: "web", Runs: 2, CostUSD: 0.625, InputTokens: 200, OutputTokens: 20, CacheReadTokens: 2, LastActiveAt: at(commandBase.Add(3 * time.Minute))},
			{ID: "old", ProjectID: "web", Runs: 2, CostUSD: 1.25, InputTokens: 200, OutputTokens: 20, CacheReadTokens: 2, LastActiveAt: at(commandBase.Add(2 * time.Minute))},
		}
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("FindAgentSessions(web) differs (-want +got):\n%s", diff)
		}
		for _, s := range got {
			assertUTC(t, "session", &s.LastActiveAt)
		}
		if got, err := repo.FindAgentSessions(ctx, "web", 1); err != nil || len(got) != 1 || got[0].ID != "new" {
			t.Errorf("FindAgentSessions(web, 1) = %v, %v; want the newest only", got, err)
		}
		if got, err := repo.FindAgentSessions(ctx, "none", 10); err != nil || len(got) != 0 {
			t.Errorf("FindAgentSessions(none) = %v, %v; want none", got, err)
		}
	})
}

func summary(id, project, session string, cost float64, ended time.Time) *domain.AgentSummary {
	return &domain.AgentSummary{
		CommandID: id, ProjectID: project, EndedAt: ended,
		Finished: domain.AgentFinished{
			Status: domain.AgentSucceeded, CostUSD: cost, InputTokens: 100, OutputTokens: 10, CacheReadTokens: 1, SessionID: session,
		},
	}
}
