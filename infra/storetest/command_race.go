package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// TestClaimRace checks that concurrent claims are exact. repos are separate
// views (connection pools) of one empty, migrated database, as separate
// processes would have. claimers goroutines per repository claim 1 to 8
// commands at a time, with at most one RUNNING per project, and finish them
// at once, until the given number of commands (1,000 makes a good test) in
// 50 projects have all run: each must be claimed exactly once, and no
// project may ever have two running.
func TestClaimRace(t *testing.T, repos []domain.CommandRepository, claimers, commands int) {
	const projects = 50
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	mustCreateRandomQueue(t, ctx, repos[0], commands, projects)

	var (
		mu        sync.Mutex
		inFlight  = map[string]int{}    // project → commands claimed, not yet finishing
		claimedBy = map[string]string{} // command → owner
		wg        sync.WaitGroup
	)
	for ri, repo := range repos {
		for g := range claimers {
			owner := fmt.Sprintf("repo%d-claimer%d", ri, g)
			wg.Go(func() {
				rng := seeded(uint64(ri), uint64(g))
				for ctx.Err() == nil {
					now := time.Now()
					cs, err := repo.ClaimCommands(ctx, domain.ClaimRequest{
						Owner: owner, Max: 1 + rng.IntN(8), PerProject: 1,
						LeaseUntil: now.Add(time.Minute), Now: now,
					})
					if err != nil {
						t.Errorf("%s: ClaimCommands: %v", owner, err)
						cancel() // the projects it holds would block the others
						return
					}
					mu.Lock()
					for _, c := range cs {
						if prev, ok := claimedBy[c.ID]; ok {
							t.Errorf("command %s claimed by %s and again by %s", c.ID, prev, owner)
						}
						claimedBy[c.ID] = owner
						if inFlight[c.ProjectID]++; inFlight[c.ProjectID] > 1 {
							t.Errorf("project %s has %d commands running, want at most 1", c.ProjectID, inFlight[c.ProjectID])
						}
					}
					mu.Unlock()
					for _, c := range cs {
						// Sometimes run a little, to widen the window in which
						// a wrong second claim of the project would show.
						if rng.IntN(4) == 0 {
							time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
						}
						// Out of the count before the finish commits: from then
						// on, the store may rightly give the project's slot away.
						mu.Lock()
						inFlight[c.ProjectID]--
						mu.Unlock()
						if _, err := repo.FinishCommand(ctx, domain.Lease{CommandID: c.ID, Owner: owner, Epoch: 1}, succeeded(), nil); err != nil {
							t.Errorf("%s: FinishCommand(%s): %v", owner, c.ID, err)
							cancel()
							return
						}
					}
					if len(cs) > 0 {
						continue
					}
					// Nothing claimable: done if nothing is queued, else other
					// claimers hold the projects that have work.
					st, err := repo.QueueStats(ctx)
					if err != nil {
						t.Errorf("%s: QueueStats: %v", owner, err)
						cancel()
						return
					}
					if queuedTotal(st) == 0 {
						return
					}
					time.Sleep(time.Millisecond)
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if err := ctx.Err(); err != nil {
		t.Fatalf("claimers did not finish: %v", err)
	}
	if len(claimedBy) != commands {
		t.Errorf("%d commands claimed, want %d", len(claimedBy), commands)
	}
	assertQueueStats(t, repos[0], domain.QueueStats{Queued: zeroQueued()})
	done, err := repos[0].FindCommands(ctx, domain.CommandFilter{Status: domain.CommandSucceeded})
	if err != nil {
		t.Fatal(err)
	}
	if len(done) != commands {
		t.Errorf("%d commands SUCCEEDED, want %d", len(done), commands)
	}
	owners := map[string]int{}
	for _, o := range claimedBy {
		owners[o]++
	}
	t.Logf("claims per claimer: %v", owners)
}

// TestClaimOrderAtScale claims, one claimer at a time, a queue of 1,000
// commands of mixed priorities in 50 projects without a per-project cap, and
// checks the order is exact: highest priority first, FIFO within one.
func TestClaimOrderAtScale(t *testing.T, repo domain.CommandRepository) {
	ctx := t.Context()
	all := mustCreateRandomQueue(t, ctx, repo, 1000, 50)
	var got []string
	rng := seeded(3, 4)
	for len(got) < len(all) {
		cs := mustClaim(t, ctx, repo, claimRequest("d1", 1+rng.IntN(32), 0))
		if len(cs) == 0 {
			t.Fatalf("claimed %d of %d, then nothing", len(got), len(all))
		}
		got = append(got, commandIDs(cs)...)
	}
	if diff := cmp.Diff(commandIDs(claimOrder(all)), got); diff != "" {
		t.Errorf("claim order (-want +got):\n%s", diff)
	}
}

// mustCreateRandomQueue queues n commands in the given number of projects,
// with random priorities, created in an order unrelated to their IDs.
func mustCreateRandomQueue(tb testing.TB, ctx context.Context, repo domain.CommandRepository, n, projects int) []*domain.Command {
	tb.Helper()
	rng := seeded(5, 6)
	cs := make([]*domain.Command, 0, n)
	for _, i := range rng.Perm(n) {
		c := newCommand(fmt.Sprintf("project-%02d", rng.IntN(projects)), i)
		c.Priority = domain.Priorities[rng.IntN(len(domain.Priorities))]
		cs = append(cs, c)
	}
	// A few writers at once: on Postgres that is much faster.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(cs); i += 4 {
				if err := repo.CreateCommand(ctx, cs[i], nil); err != nil {
					tb.Errorf("CreateCommand(%s): %v", cs[i].ID, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if tb.Failed() {
		tb.FailNow()
	}
	return cs
}

func queuedTotal(st domain.QueueStats) int {
	n := 0
	for _, q := range st.Queued {
		n += q
	}
	return n
}

// seeded returns a random generator with a fixed seed, so that a test's data
// is the same on every run.
func seeded(a, b uint64) *rand.Rand {
	return rand.New(rand.NewPCG(a, b)) //nolint:gosec // G404: reproducible test data, not secrets.
}
