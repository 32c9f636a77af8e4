package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// sessionRun returns a new agent run of project, numbered i, that resumes
// session.
func sessionRun(project, session string, i int) *domain.Command {
	c := newCommand(project, i)
	c.AgentProtocol, c.AgentSession = domain.ClaudeCodeProtocol, session
	return c
}

// testAgentSession checks that a project has at most one QUEUED or RUNNING
// run of an agent session, also when many are created at once, and that
// FindCommands selects runs by session.
func testAgentSession(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OneActiveRun", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		first := sessionRun("web", "s1", 0)
		mustCreateCommand(t, ctx, repo, first)
		for _, other := range []*domain.Command{sessionRun("api", "s1", 1), sessionRun("web", "s2", 2), newCommand("web", 3)} {
			mustCreateCommand(t, ctx, repo, other) // another project, another session, no session
		}
		dup := sessionRun("web", "s1", 4)
		if err := repo.CreateCommand(ctx, dup, nil); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Fatalf("CreateCommand(second queued run of the session) = %v, want code %q", err, domain.ECONFLICT)
		}
		// Running, it still holds the session.
		now := time.Now()
		claimed := mustClaim(t, ctx, repo, domain.ClaimRequest{Owner: "o", Max: 10, PerProject: 10, LeaseUntil: now.Add(time.Minute), Now: now})
		var running *domain.Command
		for _, c := range claimed {
			if c.ID == first.ID {
				running = c
			}
		}
		if running == nil {
			t.Fatalf("claimed %d commands, not the first run", len(claimed))
		}
		if err := repo.CreateCommand(ctx, dup, nil); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Fatalf("CreateCommand(run of a session that runs) = %v, want code %q", err, domain.ECONFLICT)
		}
		// Ended, it frees it.
		mustFinish(t, ctx, repo, running, succeeded())
		mustCreateCommand(t, ctx, repo, dup)

		got, err := repo.FindCommands(ctx, domain.CommandFilter{ProjectID: "web", AgentSession: "s1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != dup.ID || got[1].ID != first.ID || got[0].AgentSession != "s1" {
			t.Errorf("FindCommands(session s1) = %d commands %v, want %s and %s", len(got), commandIDs(got), dup.ID, first.ID)
		}
	})

	t.Run("CancelledFrees", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		first := sessionRun("web", "s1", 0)
		mustCreateCommand(t, ctx, repo, first)
		if _, err := repo.RequestCancel(ctx, first.ID, "test", time.Now(), nil); err != nil {
			t.Fatal(err)
		}
		mustCreateCommand(t, ctx, repo, sessionRun("web", "s1", 1))
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		const n = 8
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			created   []string
			conflicts int
		)
		for i := range n {
			wg.Go(func() {
				c := sessionRun("web", "s1", i)
				err := repo.CreateCommand(ctx, c, nil)
				mu.Lock()
				defer mu.Unlock()
				switch domain.ErrorCode(err) {
				case "":
					created = append(created, c.ID)
				case domain.ECONFLICT:
					conflicts++
				default:
					t.Errorf("CreateCommand(%s) = %v, want success or %s", c.ID, err, domain.ECONFLICT)
				}
			})
		}
		wg.Wait()
		if len(created) != 1 || conflicts != n-1 {
			t.Errorf("%d runs of one session created at once: %d queued %v, %d refused; want 1 queued", n, len(created), created, conflicts)
		}
	})
}
