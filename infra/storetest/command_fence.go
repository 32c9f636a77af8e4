package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// testFencing checks that writes under a lease are stored only while the
// lease holds: a process that lost a command can write nothing more for it.
func testFencing(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("ClaimRaisesEpoch", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommands(t, ctx, repo, []*domain.Command{newCommand("a", 0), newCommand("b", 1)})
		for _, c := range mustClaim(t, ctx, repo, claimRequest("d1", 2, 0)) {
			if c.LeaseEpoch != 1 || mustFindCommand(t, ctx, repo, c.ID).LeaseEpoch != 1 {
				t.Errorf("command %s claimed once has epoch %d, want 1", c.ID, c.LeaseEpoch)
			}
		}
	})

	t.Run("OutputUnderLease", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, newCommand("web", 0))
		c := mustClaim(t, ctx, repo, claimRequest("d1", 1, 0))[0]
		first := []domain.OutputChunk{chunk(c.ID, 1, "one\n"), chunk(c.ID, 2, "two\x00\n")}
		if err := repo.AppendOutput(ctx, c.Lease(), first); err != nil {
			t.Fatalf("AppendOutput under the lease: %v", err)
		}
		// A retried write, with one chunk more, is harmless.
		if err := repo.AppendOutput(ctx, c.Lease(), append(first, chunk(c.ID, 3, "three\n"))); err != nil {
			t.Fatalf("AppendOutput retried: %v", err)
		}
		got := mustFindCommand(t, ctx, repo, c.ID)
		if want := int64(len("one\ntwo\x00\nthree\n")); got.LastSeq != 3 || got.OutputBytes != want {
			t.Errorf("while running: lastSeq %d, outputBytes %d; want 3, %d (what is stored so far)", got.LastSeq, got.OutputBytes, want)
		}
		assertOutput(t, repo, c.ID, 0, 0, append(first, chunk(c.ID, 3, "three\n")))

		other := c.Lease()
		other.CommandID = domain.NewID(time.Now())
		if err := repo.AppendOutput(ctx, c.Lease(), []domain.OutputChunk{chunk(other.CommandID, 1, "x")}); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("AppendOutput of another command's chunk under a lease = %v, want code %s", err, domain.EINVALID)
		}
	})

	t.Run("OutputLeaseLost", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommands(t, ctx, repo, []*domain.Command{newCommand("web", 0), newCommand("web", 1)})
		r := claimRequest("d1", 2, 0)
		r.LeaseUntil = time.Now().Add(-time.Second)
		cs := mustClaim(t, ctx, repo, r)
		c := cs[0]
		if err := repo.AppendOutput(ctx, c.Lease(), []domain.OutputChunk{chunk(c.ID, 1, "mine\n")}); err != nil {
			t.Fatal(err)
		}
		for name, lease := range map[string]domain.Lease{
			"OtherOwner": {CommandID: c.ID, Owner: "d2", Epoch: c.LeaseEpoch},
			"OtherEpoch": {CommandID: c.ID, Owner: c.Owner, Epoch: c.LeaseEpoch + 1},
		} {
			err := repo.AppendOutput(ctx, lease, []domain.OutputChunk{chunk(c.ID, 2, name)})
			if !errors.Is(err, domain.ErrLeaseLost) || domain.ErrorCode(err) != domain.ECONFLICT {
				t.Errorf("%s: AppendOutput = %v, want ErrLeaseLost", name, err)
			}
		}
		// Another process expires the leases: the owner can store nothing
		// more, and the interrupted command's lastSeq covers what it stored.
		if got, err := repo.ExpireLeases(ctx, time.Now(), nil); err != nil || len(got) != 2 {
			t.Fatalf("ExpireLeases = %d, %v; want both", len(got), err)
		}
		err := repo.AppendOutput(ctx, c.Lease(), []domain.OutputChunk{chunk(c.ID, 2, "late\n")})
		if !errors.Is(err, domain.ErrLeaseLost) {
			t.Errorf("AppendOutput after the lease was lost = %v, want ErrLeaseLost", err)
		}
		assertOutput(t, repo, c.ID, 0, 0, []domain.OutputChunk{chunk(c.ID, 1, "mine\n")})
		if got := mustFindCommand(t, ctx, repo, c.ID); got.LastSeq != 1 || got.Status != domain.CommandInterrupted {
			t.Errorf("after expiry: %s with lastSeq %d, want INTERRUPTED with 1", got.Status, got.LastSeq)
		}
		_, err = repo.FinishCommand(ctx, cs[1].Lease(), succeeded(), nil)
		if !errors.Is(err, domain.ErrLeaseLost) {
			t.Errorf("FinishCommand after the lease was lost = %v, want ErrLeaseLost", err)
		}
	})

	t.Run("FinishFenced", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, newCommand("web", 0))
		c := mustClaim(t, ctx, repo, claimRequest("d1", 1, 0))[0]
		stale := c.Lease()
		stale.Epoch++
		if _, err := repo.FinishCommand(ctx, stale, succeeded(), nil); !errors.Is(err, domain.ErrLeaseLost) {
			t.Errorf("FinishCommand under another epoch = %v, want ErrLeaseLost", err)
		}
		f := succeeded()
		f.LostBytes = 42
		first, err := repo.FinishCommand(ctx, c.Lease(), f, nil)
		if err != nil {
			t.Fatal(err)
		}
		if first.LostBytes != 42 || mustFindCommand(t, ctx, repo, c.ID).LostBytes != 42 {
			t.Errorf("LostBytes = %d, want 42 stored", first.LostBytes)
		}
		// The same finish again, as after a reply lost on the way, returns
		// the command as stored; a different one is refused.
		again, err := repo.FinishCommand(ctx, c.Lease(), f, nil)
		if err != nil || again.Status != domain.CommandSucceeded {
			t.Errorf("FinishCommand repeated = %v, %v; want the stored command", again, err)
		}
		f.Status, f.ExitCode = domain.CommandFailed, ptr(1)
		if _, err := repo.FinishCommand(ctx, c.Lease(), f, nil); !errors.Is(err, domain.ErrLeaseLost) {
			t.Errorf("FinishCommand with another end = %v, want ErrLeaseLost", err)
		}
	})

	t.Run("InterruptHeldBy", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommands(t, ctx, repo, []*domain.Command{newCommand("a", 0), newCommand("b", 1), newCommand("c", 2), newCommand("d", 3)})
		dead := mustClaim(t, ctx, repo, claimRequest("dead", 2, 0))
		alive := mustClaim(t, ctx, repo, claimRequest("alive", 1, 0))[0]
		if err := repo.AppendOutput(ctx, dead[0].Lease(), []domain.OutputChunk{chunk(dead[0].ID, 1, "out\n")}); err != nil {
			t.Fatal(err)
		}
		owners, err := repo.RunningOwners(ctx)
		if err != nil || len(owners) != 2 || owners[0] != "alive" || owners[1] != "dead" {
			t.Fatalf("RunningOwners = %v, %v; want [alive dead]", owners, err)
		}
		now := time.Now()
		got, err := repo.InterruptHeldBy(ctx, []string{"dead", "nobody"}, now, nil)
		if err != nil || len(got) != 2 {
			t.Fatalf("InterruptHeldBy = %s, %v; want dead's two commands", commandIDs(got), err)
		}
		for _, c := range got {
			if c.Status != domain.CommandInterrupted || c.Reason == "" || c.LeaseExpiresAt != nil || c.Owner != "dead" {
				t.Errorf("taken over: %+v, want INTERRUPTED with a reason, no lease, its owner kept", c)
			}
		}
		if c := mustFindCommand(t, ctx, repo, dead[0].ID); c.LastSeq != 1 {
			t.Errorf("lastSeq %d after takeover, want 1", c.LastSeq)
		}
		if c := mustFindCommand(t, ctx, repo, alive.ID); c.Status != domain.CommandRunning {
			t.Errorf("another owner's command is %s", c.Status)
		}
		if again, err := repo.InterruptHeldBy(ctx, []string{"dead"}, now, nil); err != nil || len(again) != 0 {
			t.Errorf("InterruptHeldBy again = %s, %v; want none", commandIDs(again), err)
		}
		if none, err := repo.InterruptHeldBy(ctx, nil, now, nil); err != nil || len(none) != 0 {
			t.Errorf("InterruptHeldBy(no owners) = %s, %v; want none", commandIDs(none), err)
		}
	})

	t.Run("ReleaseUnstarted", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommands(t, ctx, repo, []*domain.Command{newCommand("a", 0), newCommand("b", 1), newCommand("c", 2), newCommand("d", 3)})
		mine := mustClaim(t, ctx, repo, claimRequest("d1", 3, 0))
		theirs := mustClaim(t, ctx, repo, claimRequest("d2", 1, 0))[0]
		mustRequestCancel(t, ctx, repo, mine[2].ID)
		now := time.Now()
		got, err := repo.ReleaseUnstarted(ctx, "d1", []string{mine[0].ID}, now)
		if err != nil || len(got) != 2 || got[0].ID != mine[1].ID || got[1].ID != mine[2].ID {
			t.Fatalf("ReleaseUnstarted = %s, %v; want the two unstarted", commandIDs(got), err)
		}
		if c := mustFindCommand(t, ctx, repo, mine[1].ID); c.Status != domain.CommandQueued || c.Owner != "" || c.LeaseExpiresAt != nil || c.StartedAt != nil {
			t.Errorf("released: %+v, want QUEUED without owner, lease or start", c)
		}
		if c := mustFindCommand(t, ctx, repo, mine[2].ID); c.Status != domain.CommandCancelled || c.FinishedAt == nil {
			t.Errorf("released with a cancel requested: %s, want CANCELLED and finished", c.Status)
		}
		for _, id := range []string{mine[0].ID, theirs.ID} {
			if c := mustFindCommand(t, ctx, repo, id); c.Status != domain.CommandRunning {
				t.Errorf("%s: %s, want it RUNNING still", id, c.Status)
			}
		}
		again := mustClaim(t, ctx, repo, claimRequest("d3", 1, 0))
		if len(again) != 1 || again[0].ID != mine[1].ID || again[0].LeaseEpoch != 2 {
			t.Errorf("claimed again: %+v, want the released command with epoch 2", again)
		}
		if _, err := repo.ReleaseUnstarted(ctx, "", nil, now); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("ReleaseUnstarted(no owner) = %v, want INVALID_INPUT", err)
		}
	})

	t.Run("ReleaseUnstartedWithEnv", func(t *testing.T) {
		// The claim cleared its env values: it cannot run as asked, so it
		// ends rather than going back to the queue without them.
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, fullCommand("web", 0))
		claimed := mustClaim(t, ctx, repo, claimRequest("d1", 1, 0))
		now := time.Now()
		got, err := repo.ReleaseUnstarted(ctx, "d1", nil, now)
		if err != nil || len(got) != 1 || got[0].ID != claimed[0].ID {
			t.Fatalf("ReleaseUnstarted = %s, %v; want %s", commandIDs(got), err, commandIDs(claimed))
		}
		c := mustFindCommand(t, ctx, repo, claimed[0].ID)
		if c.Status != domain.CommandInterrupted || c.Reason == "" || c.FinishedAt == nil || c.LeaseExpiresAt != nil || c.Env["HOME"] != "" {
			t.Errorf("released with env: %+v, want INTERRUPTED with a reason, finished, no lease, no env values", c)
		}
		if again := mustClaim(t, ctx, repo, claimRequest("d2", 1, 0)); len(again) != 0 {
			t.Errorf("claimed %s again without its env values", commandIDs(again))
		}
		if _, err := repo.ReleaseUnstarted(ctx, "", nil, now); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("ReleaseUnstarted(no owner) = %v, want INVALID_INPUT", err)
		}
	})
}
