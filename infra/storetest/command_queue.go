package storetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

func testClaimCommands(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := fullCommand("web", 0)
		mustCreateCommand(t, ctx, repo, c)
		now := time.Now().Add(1234 * time.Nanosecond).In(elsewhere)
		r := domain.ClaimRequest{Owner: "d1", Max: 5, PerProject: 1, LeaseUntil: now.Add(30 * time.Second), Now: now}
		got := mustClaim(t, ctx, repo, r)

		want := c.Clone()
		want.Status = domain.CommandRunning
		want.Owner = "d1"
		want.StartedAt = ptr(now.Truncate(time.Microsecond))
		want.LeaseExpiresAt = ptr(r.LeaseUntil.Truncate(time.Microsecond))
		want.LeaseEpoch = 1
		if diff := cmp.Diff([]*domain.Command{want}, got, cmpOpts...); diff != "" {
			t.Errorf("ClaimCommands (-want +got):\n%s", diff)
		}
		assertCommandUTC(t, got[0])
		// The claim returns the env values and storage keeps only the names.
		want.ClearEnv()
		if diff := cmp.Diff(want, mustFindCommand(t, ctx, repo, c.ID), cmpOpts...); diff != "" {
			t.Errorf("stored after claim (-want +got):\n%s", diff)
		}
		// Nothing is left to claim.
		if again := mustClaim(t, ctx, repo, claimRequest("d2", 5, 0)); len(again) != 0 {
			t.Errorf("claimed %s twice", commandIDs(again))
		}
	})

	t.Run("StartedNotBeforeCreated", func(t *testing.T) {
		// A claim's Now can be read just before a command it takes was
		// queued; the command still starts no earlier than it was created.
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := newCommand("web", 0)
		c.CreatedAt = at(time.Now().Add(time.Second))
		mustCreateCommand(t, ctx, repo, c)
		r := claimRequest("d1", 1, 0)
		got := mustClaim(t, ctx, repo, r)
		if len(got) != 1 || got[0].StartedAt == nil || !got[0].StartedAt.Equal(c.CreatedAt) {
			t.Fatalf("claimed %+v; want it started at its creation, %s, not at the claim's now, %s", got, c.CreatedAt, r.Now)
		}
		if s := mustFindCommand(t, ctx, repo, c.ID).StartedAt; s == nil || !s.Equal(c.CreatedAt) {
			t.Errorf("stored startedAt %v, want %s", s, c.CreatedAt)
		}
	})

	t.Run("Order", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		// Random priorities and projects, created in random order.
		rng := seeded(1, 2)
		var all []*domain.Command
		for _, i := range rng.Perm(40) {
			c := newCommand([]string{"web", "api", "db"}[rng.IntN(3)], i)
			c.Priority = domain.Priorities[rng.IntN(len(domain.Priorities))]
			mustCreateCommand(t, ctx, repo, c)
			all = append(all, c)
		}
		want := claimOrder(all)
		// One at a time, then in batches of several sizes.
		var got []string
		for range 5 {
			got = append(got, commandIDs(mustClaim(t, ctx, repo, claimRequest("d1", 1, 0)))...)
		}
		for _, n := range []int{2, 7, 3, 100} {
			batch := mustClaim(t, ctx, repo, claimRequest("d1", n, 0))
			if len(batch) != min(n, len(all)-len(got)) {
				t.Errorf("ClaimCommands(Max %d) claimed %d with %d queued", n, len(batch), len(all)-len(got))
			}
			got = append(got, commandIDs(batch)...)
		}
		if diff := cmp.Diff(commandIDs(want), got); diff != "" {
			t.Errorf("claim order (-want +got):\n%s", diff)
		}
	})

	t.Run("PerProject", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		web := []*domain.Command{newCommand("web", 0), newCommand("web", 1), newCommand("web", 2)}
		api := newCommand("api", 3)
		api.Priority = domain.PriorityLow
		for _, c := range append(slices.Clone(web), api) {
			mustCreateCommand(t, ctx, repo, c)
		}
		// One per project, whatever the priorities.
		got := mustClaim(t, ctx, repo, claimRequest("d1", 10, 1))
		if diff := cmp.Diff([]string{web[0].ID, api.ID}, commandIDs(got)); diff != "" {
			t.Errorf("first claim (-want +got):\n%s", diff)
		}
		// The cap counts every owner's running commands.
		if got := mustClaim(t, ctx, repo, claimRequest("d2", 10, 1)); len(got) != 0 {
			t.Errorf("claim by another owner while web runs got %s", commandIDs(got))
		}
		got = mustClaim(t, ctx, repo, claimRequest("d2", 10, 2))
		if diff := cmp.Diff([]string{web[1].ID}, commandIDs(got)); diff != "" {
			t.Errorf("claim with PerProject 2 (-want +got):\n%s", diff)
		}
		// A finished command frees its slot.
		mustFinish(t, ctx, repo, mustFindCommand(t, ctx, repo, web[0].ID), succeeded())
		got = mustClaim(t, ctx, repo, claimRequest("d1", 10, 2))
		if diff := cmp.Diff([]string{web[2].ID}, commandIDs(got)); diff != "" {
			t.Errorf("claim after a finish (-want +got):\n%s", diff)
		}
	})

	t.Run("PerProjectSkipsFullProjects", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		// More urgent commands of one project than a claim reads at once,
		// ahead of a low one of another project.
		var urgent []*domain.Command
		for i := range 150 {
			c := newCommand("busy", i)
			c.Priority = domain.PriorityUrgent
			urgent = append(urgent, c)
		}
		low := newCommand("quiet", 1000)
		low.Priority = domain.PriorityLow
		mustCreateCommands(t, ctx, repo, append(urgent, low))
		got := mustClaim(t, ctx, repo, claimRequest("d1", 3, 1))
		if diff := cmp.Diff([]string{urgent[0].ID, low.ID}, commandIDs(got)); diff != "" {
			t.Errorf("claim (-want +got):\n%s", diff)
		}
		// With one busy command running, the rest wait; with it done, the
		// next one runs.
		mustFinish(t, ctx, repo, got[0], succeeded())
		got = mustClaim(t, ctx, repo, claimRequest("d1", 3, 1))
		if diff := cmp.Diff([]string{urgent[1].ID}, commandIDs(got)); diff != "" {
			t.Errorf("claim after a finish (-want +got):\n%s", diff)
		}
	})

	t.Run("OnlyQueued", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		cs := []*domain.Command{newCommand("a", 0), newCommand("b", 1), newCommand("c", 2)}
		mustCreateCommands(t, ctx, repo, cs)
		mustRequestCancel(t, ctx, repo, cs[0].ID)
		running := mustClaim(t, ctx, repo, claimRequest("d1", 1, 0))
		mustFinish(t, ctx, repo, running[0], succeeded())
		got := mustClaim(t, ctx, repo, claimRequest("d1", 10, 0))
		if diff := cmp.Diff([]string{cs[2].ID}, commandIDs(got)); diff != "" {
			t.Errorf("claim (-want +got):\n%s", diff)
		}
	})

	t.Run("Nothing", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		if got := mustClaim(t, ctx, repo, claimRequest("d1", 10, 1)); len(got) != 0 {
			t.Errorf("ClaimCommands(empty queue) = %s", commandIDs(got))
		}
		mustCreateCommand(t, ctx, repo, newCommand("web", 0))
		if got := mustClaim(t, ctx, repo, claimRequest("d1", 0, 1)); len(got) != 0 {
			t.Errorf("ClaimCommands(Max 0) = %s", commandIDs(got))
		}
	})

	t.Run("ErrInvalidOwner", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, newCommand("web", 0))
		_, err := repo.ClaimCommands(ctx, claimRequest("", 1, 1))
		if code := domain.ErrorCode(err); code != domain.EINVALID {
			t.Fatalf("ClaimCommands(no owner) = %v (code %q), want code %q", err, code, domain.EINVALID)
		}
	})
}

func testRenewLeases(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		var cs []*domain.Command
		for i := range 6 {
			cs = append(cs, newCommand("web", i))
		}
		mustCreateCommands(t, ctx, repo, cs)
		mine := mustClaim(t, ctx, repo, claimRequest("d1", 3, 0))   // cs[0:3]
		theirs := mustClaim(t, ctx, repo, claimRequest("d2", 1, 0)) // cs[3]
		mustFinish(t, ctx, repo, mine[2], succeeded())
		mustRequestCancel(t, ctx, repo, cs[1].ID)
		mustRequestCancel(t, ctx, repo, cs[3].ID) // theirs, running
		mustRequestCancel(t, ctx, repo, cs[5].ID) // queued: now cancelled

		before := map[string]*domain.Command{}
		for _, c := range cs {
			before[c.ID] = mustFindCommand(t, ctx, repo, c.ID)
		}
		until := time.Now().Add(time.Minute + 789*time.Nanosecond).In(elsewhere)
		ids := []string{cs[0].ID, cs[1].ID, cs[2].ID, cs[3].ID, cs[4].ID, cs[5].ID, domain.NewID(time.Now())}
		got, err := repo.RenewLeases(ctx, "d1", ids, until)
		if err != nil {
			t.Fatalf("RenewLeases: %v", err)
		}
		if diff := cmp.Diff([]string{cs[1].ID}, got.Cancel, cmpOpts...); diff != "" {
			t.Errorf("RenewLeases cancel IDs (-want +got):\n%s", diff)
		}
		// Lost: finished, another's, queued, cancelled and unknown.
		lost := []string{cs[2].ID, cs[3].ID, cs[4].ID, cs[5].ID, ids[6]}
		slices.Sort(lost)
		if diff := cmp.Diff(lost, got.Lost, cmpOpts...); diff != "" {
			t.Errorf("RenewLeases lost IDs (-want +got):\n%s", diff)
		}
		// Only d1's running commands got the new lease.
		for _, c := range mine[:2] {
			got := mustFindCommand(t, ctx, repo, c.ID)
			if got.LeaseExpiresAt == nil || !got.LeaseExpiresAt.Equal(until.Truncate(time.Microsecond)) {
				t.Errorf("command %s: lease = %v, want %v", c.ID, got.LeaseExpiresAt, until)
			}
			assertCommandUTC(t, got)
		}
		// Nothing else changed.
		for _, c := range []*domain.Command{mine[2], theirs[0], cs[4], cs[5]} {
			if diff := cmp.Diff(before[c.ID], mustFindCommand(t, ctx, repo, c.ID), cmpOpts...); diff != "" {
				t.Errorf("RenewLeases changed command %s (-before +after):\n%s", c.ID, diff)
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		got, err := repo.RenewLeases(ctx, "d1", nil, time.Now())
		if err != nil || len(got.Cancel) != 0 || len(got.Lost) != 0 {
			t.Fatalf("RenewLeases(no IDs) = %+v, %v; want none, no error", got, err)
		}
	})
}

func testExpireLeases(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		cs := []*domain.Command{newCommand("web", 0), newCommand("web", 1), newCommand("web", 2), newCommand("web", 3)}
		mustCreateCommands(t, ctx, repo, cs)
		now := time.Now()
		claim := func(owner string, lease time.Duration) *domain.Command {
			r := claimRequest(owner, 1, 0)
			r.LeaseUntil = now.Add(lease)
			return mustClaim(t, ctx, repo, r)[0]
		}
		expired := claim("dead", -time.Second)
		alsoExpired := claim("dead", -time.Millisecond)
		alive := claim("alive", time.Second)
		// cs[3] stays queued.
		out := []domain.OutputChunk{chunk(expired.ID, 1, "ünï"), chunk(expired.ID, 2, ""), chunk(expired.ID, 3, "x\x00y"), chunk(alive.ID, 1, "other")}
		if err := repo.AppendOutput(ctx, domain.Lease{}, out); err != nil {
			t.Fatal(err)
		}

		when := now.Add(567 * time.Nanosecond).In(elsewhere)
		got, err := repo.ExpireLeases(ctx, when, nil)
		if err != nil {
			t.Fatalf("ExpireLeases: %v", err)
		}
		var want []*domain.Command
		for _, c := range []*domain.Command{expired, alsoExpired} {
			w := c.Clone()
			w.Status = domain.CommandInterrupted
			w.Reason = "lease expired: the process running it stopped"
			w.FinishedAt = ptr(when.Truncate(time.Microsecond))
			w.LeaseExpiresAt = nil // no lease once ended; the owner stays
			want = append(want, w)
		}
		// From the stored output.
		want[0].LastSeq, want[0].OutputBytes = 3, int64(len("ünï")+len("x\x00y"))
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("ExpireLeases (-want +got):\n%s", diff)
		}
		for _, w := range want {
			if diff := cmp.Diff(w, mustFindCommand(t, ctx, repo, w.ID), cmpOpts...); diff != "" {
				t.Errorf("stored after expiry (-want +got):\n%s", diff)
			}
		}
		if c := mustFindCommand(t, ctx, repo, alive.ID); c.Status != domain.CommandRunning {
			t.Errorf("a command with a live lease is %s", c.Status)
		}
		if c := mustFindCommand(t, ctx, repo, cs[3].ID); c.Status != domain.CommandQueued {
			t.Errorf("a queued command is %s", c.Status)
		}
		// Its owner can no longer finish it; expiring again finds nothing.
		if _, err := repo.FinishCommand(ctx, domain.Lease{CommandID: expired.ID, Owner: "dead", Epoch: 1}, succeeded(), nil); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("FinishCommand(expired) = %v, want code %q", err, domain.ECONFLICT)
		}
		if again, err := repo.ExpireLeases(ctx, when, nil); err != nil || len(again) != 0 {
			t.Errorf("ExpireLeases again = %s, %v; want none", commandIDs(again), err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		var cs []*domain.Command
		for i := range 30 {
			cs = append(cs, newCommand("p"+string(rune('a'+i%5)), i))
		}
		mustCreateCommands(t, ctx, repo, cs)
		r := claimRequest("dead", 30, 0)
		r.LeaseUntil = time.Now().Add(-time.Second)
		mustClaim(t, ctx, repo, r)

		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for i := range 4 {
			wg.Go(func() {
				got, err := repo.ExpireLeases(ctx, time.Now(), nil)
				if err != nil {
					t.Errorf("ExpireLeases #%d: %v", i, err)
				}
				mu.Lock()
				defer mu.Unlock()
				for _, c := range got {
					seen[c.ID]++
				}
			})
		}
		wg.Wait()
		for _, c := range cs {
			if seen[c.ID] != 1 {
				t.Errorf("command %s was expired %d times, want once", c.ID, seen[c.ID])
			}
		}
	})
}

func testRequestCancel(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("Queued", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := fullCommand("web", 0)
		mustCreateCommand(t, ctx, repo, c)
		now := time.Now().Add(321 * time.Nanosecond).In(elsewhere)
		got, err := repo.RequestCancel(ctx, c.ID, "cancelled by key1", now, nil)
		if err != nil {
			t.Fatalf("RequestCancel: %v", err)
		}
		want := c.Clone()
		want.Status = domain.CommandCancelled
		want.Reason = "cancelled by key1"
		want.FinishedAt = ptr(now.Truncate(time.Microsecond))
		want.ClearEnv() // an end clears env values as a start does
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("RequestCancel (-want +got):\n%s", diff)
		}
		assertCommandUTC(t, got)
		if diff := cmp.Diff(want, mustFindCommand(t, ctx, repo, c.ID), cmpOpts...); diff != "" {
			t.Errorf("stored after cancel (-want +got):\n%s", diff)
		}
		if got := mustClaim(t, ctx, repo, claimRequest("d1", 10, 0)); len(got) != 0 {
			t.Errorf("claimed a cancelled command: %s", commandIDs(got))
		}
	})

	t.Run("Running", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, newCommand("web", 0))
		running := mustClaim(t, ctx, repo, claimRequest("d1", 1, 0))[0]
		got, err := repo.RequestCancel(ctx, running.ID, "first", time.Now(), nil)
		if err != nil {
			t.Fatalf("RequestCancel: %v", err)
		}
		want := running.Clone()
		want.CancelRequested = true
		want.Reason = "first"
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("RequestCancel (-want +got):\n%s", diff)
		}
		// Asking again changes nothing.
		got, err = repo.RequestCancel(ctx, running.ID, "second", time.Now(), nil)
		if err != nil {
			t.Fatalf("RequestCancel again: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("RequestCancel again (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, mustFindCommand(t, ctx, repo, running.ID), cmpOpts...); diff != "" {
			t.Errorf("stored after cancel (-want +got):\n%s", diff)
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		cancelled, finished := newCommand("a", 0), newCommand("b", 1)
		mustCreateCommands(t, ctx, repo, []*domain.Command{cancelled, finished})
		mustRequestCancel(t, ctx, repo, cancelled.ID)
		claimed := mustClaim(t, ctx, repo, claimRequest("d1", 1, 0))
		f := succeeded()
		f.Status = domain.CommandFailed
		mustFinish(t, ctx, repo, claimed[0], f)
		for _, tt := range []struct {
			id     string
			status domain.CommandStatus
		}{{cancelled.ID, domain.CommandCancelled}, {finished.ID, domain.CommandFailed}} {
			before := mustFindCommand(t, ctx, repo, tt.id)
			got, err := repo.RequestCancel(ctx, tt.id, "too late", time.Now(), nil)
			if code := domain.ErrorCode(err); code != domain.ECONFLICT {
				t.Errorf("RequestCancel(%s) = %v, %v (code %q), want code %q", tt.status, got, err, code, domain.ECONFLICT)
			} else if msg := domain.ErrorMessage(err); !strings.Contains(msg, string(tt.status)) || !strings.Contains(msg, tt.id) {
				t.Errorf("RequestCancel(%s) message %q names neither the command nor its status", tt.status, msg)
			}
			if diff := cmp.Diff(before, mustFindCommand(t, ctx, repo, tt.id), cmpOpts...); diff != "" {
				t.Errorf("a refused cancel changed the command (-want +got):\n%s", diff)
			}
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, newCommand("web", 0))
		_, err := repo.RequestCancel(ctx, domain.NewID(time.Now()), "x", time.Now(), nil)
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("RequestCancel(unknown) = %v (code %q), want code %q", err, code, domain.ENOTFOUND)
		}
	})

	t.Run("RacingClaims", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		// Every command is either cancelled while queued or claimed and
		// then flagged: never both, never neither.
		var cs []*domain.Command
		for i := range 40 {
			cs = append(cs, newCommand("p"+string(rune('a'+i%8)), i))
		}
		mustCreateCommands(t, ctx, repo, cs)
		var mu sync.Mutex
		claimed := map[string]bool{}
		var wg sync.WaitGroup
		wg.Go(func() {
			for range 20 {
				got, err := repo.ClaimCommands(ctx, claimRequest("d1", 3, 0))
				if err != nil {
					t.Errorf("ClaimCommands: %v", err)
					return
				}
				mu.Lock()
				for _, c := range got {
					claimed[c.ID] = true
				}
				mu.Unlock()
			}
		})
		for _, c := range cs {
			wg.Go(func() {
				if _, err := repo.RequestCancel(ctx, c.ID, "race", time.Now(), nil); err != nil {
					t.Errorf("RequestCancel(%s): %v", c.ID, err)
				}
			})
		}
		wg.Wait()
		for _, c := range cs {
			got := mustFindCommand(t, ctx, repo, c.ID)
			switch {
			case claimed[c.ID] && (got.Status != domain.CommandRunning || !got.CancelRequested):
				t.Errorf("claimed command %s is %s, cancel requested %v; want RUNNING, true", c.ID, got.Status, got.CancelRequested)
			case !claimed[c.ID] && got.Status != domain.CommandCancelled:
				t.Errorf("unclaimed command %s is %s, want CANCELLED", c.ID, got.Status)
			}
		}
	})
}

func testFinishCommand(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, fullCommand("web", 0))
		running := mustClaim(t, ctx, repo, claimRequest("d1", 1, 0))[0]
		f := domain.Finish{
			Status: domain.CommandFailed, ExitCode: ptr(3), Signal: "", Reason: "exit status 3",
			FinishedAt:  time.Now().Add(999 * time.Nanosecond).In(elsewhere),
			OutputBytes: 1 << 40, Truncated: true, LastSeq: 1234567,
		}
		got, err := repo.FinishCommand(ctx, domain.Lease{CommandID: running.ID, Owner: "d1", Epoch: 1}, f, nil)
		if err != nil {
			t.Fatalf("FinishCommand: %v", err)
		}
		want := running.Clone()
		want.Status, want.ExitCode, want.Reason = f.Status, ptr(3), f.Reason
		want.FinishedAt = ptr(f.FinishedAt.Truncate(time.Microsecond))
		want.OutputBytes, want.Truncated, want.LastSeq = f.OutputBytes, true, f.LastSeq
		want.LeaseExpiresAt = nil // no lease once ended; the owner stays
		want.ClearEnv()           // the claim returned the values; storage has the names
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("FinishCommand (-want +got):\n%s", diff)
		}
		assertCommandUTC(t, got)
		if diff := cmp.Diff(want, mustFindCommand(t, ctx, repo, running.ID), cmpOpts...); diff != "" {
			t.Errorf("stored after finish (-want +got):\n%s", diff)
		}
	})

	t.Run("Signal", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, newCommand("web", 0))
		running := mustClaim(t, ctx, repo, claimRequest("d1", 1, 0))[0]
		mustRequestCancel(t, ctx, repo, running.ID)
		got := mustFinish(t, ctx, repo, running, domain.Finish{
			Status: domain.CommandCancelled, Signal: "SIGTERM", Reason: "cancelled", FinishedAt: time.Now(),
		})
		if got.ExitCode != nil || got.Signal != "SIGTERM" || !got.CancelRequested || got.Status != domain.CommandCancelled {
			t.Errorf("finished = %+v; want no exit code, SIGTERM, cancel requested, CANCELLED", got)
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		done, queued := newCommand("a", 0), newCommand("b", 1)
		mustCreateCommands(t, ctx, repo, []*domain.Command{done, queued})
		r := claimRequest("d1", 1, 0)
		running := mustClaim(t, ctx, repo, r)[0] // done
		mustFinish(t, ctx, repo, running, succeeded())
		tests := []struct {
			name, id, owner string
		}{
			{"Queued", queued.ID, "d1"},
			{"Finished", done.ID, "d1"},
		}
		mustCreateCommand(t, ctx, repo, newCommand("c", 2))
		other := mustClaim(t, ctx, repo, claimRequest("d2", 1, 0))[0]
		tests = append(tests, struct{ name, id, owner string }{"OtherOwner", other.ID, "d1"})
		for _, tt := range tests {
			before := mustFindCommand(t, ctx, repo, tt.id)
			got, err := repo.FinishCommand(ctx, domain.Lease{CommandID: tt.id, Owner: tt.owner, Epoch: 1}, succeeded(), nil)
			if code := domain.ErrorCode(err); code != domain.ECONFLICT {
				t.Errorf("%s: FinishCommand = %v, %v (code %q), want code %q", tt.name, got, err, code, domain.ECONFLICT)
			}
			if diff := cmp.Diff(before, mustFindCommand(t, ctx, repo, tt.id), cmpOpts...); diff != "" {
				t.Errorf("%s: a refused finish changed the command (-want +got):\n%s", tt.name, diff)
			}
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		_, err := repo.FinishCommand(ctx, domain.Lease{CommandID: domain.NewID(time.Now()), Owner: "d1", Epoch: 1}, succeeded(), nil)
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("FinishCommand(unknown) = %v (code %q), want code %q", err, code, domain.ENOTFOUND)
		}
	})

	// Finishes that arrive together may share a commit; each must still get
	// its own outcome, a refused one must not spoil the others.
	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		const n = 40
		cs := make([]*domain.Command, n)
		for i := range cs {
			cs[i] = newCommand(fmt.Sprint("p", i), 0)
		}
		mustCreateCommands(t, ctx, repo, cs)
		running := mustClaim(t, ctx, repo, claimRequest("d1", n, 0))
		if len(running) != n {
			t.Fatalf("claimed %d, want %d", len(running), n)
		}
		type outcome struct {
			c   *domain.Command
			err error
		}
		got := make([]outcome, n)
		var wg sync.WaitGroup
		for i, c := range running {
			wg.Go(func() {
				owner := "d1"
				if i%10 == 3 {
					owner = "intruder" // refused: not its owner
				}
				f := succeeded()
				f.LastSeq = int64(i)
				got[i].c, got[i].err = repo.FinishCommand(ctx, domain.Lease{CommandID: c.ID, Owner: owner, Epoch: 1}, f, nil)
			})
		}
		wg.Wait()
		for i, c := range running {
			stored := mustFindCommand(t, ctx, repo, c.ID)
			if i%10 == 3 {
				if domain.ErrorCode(got[i].err) != domain.ECONFLICT || stored.Status != domain.CommandRunning {
					t.Errorf("intruder's finish of %s = %v, stored %s; want ECONFLICT and RUNNING", c.ID, got[i].err, stored.Status)
				}
				continue
			}
			if got[i].err != nil || got[i].c.ID != c.ID || got[i].c.LastSeq != int64(i) {
				t.Errorf("FinishCommand(%s) = %+v, %v; want it finished with last seq %d", c.ID, got[i].c, got[i].err, i)
			}
			if stored.Status != domain.CommandSucceeded || stored.LastSeq != int64(i) {
				t.Errorf("stored %s: %s with last seq %d, want SUCCEEDED with %d", c.ID, stored.Status, stored.LastSeq, i)
			}
		}
	})

	t.Run("ErrInvalidStatus", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, newCommand("web", 0))
		running := mustClaim(t, ctx, repo, claimRequest("d1", 1, 0))[0]
		for _, st := range []domain.CommandStatus{domain.CommandQueued, domain.CommandRunning, "", "DONE"} {
			f := succeeded()
			f.Status = st
			if _, err := repo.FinishCommand(ctx, domain.Lease{CommandID: running.ID, Owner: "d1", Epoch: 1}, f, nil); domain.ErrorCode(err) != domain.EINVALID {
				t.Errorf("FinishCommand(status %q) = %v, want code %q", st, err, domain.EINVALID)
			}
		}
		if got := mustFindCommand(t, ctx, repo, running.ID); got.Status != domain.CommandRunning {
			t.Errorf("status = %s after refused finishes, want RUNNING", got.Status)
		}
	})
}

// claimOrder returns cs in the order a claim without a per-project cap takes
// them: highest priority first, then lowest ID.
func claimOrder(cs []*domain.Command) []*domain.Command {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b *domain.Command) int {
		if a.Priority != b.Priority {
			return int(b.Priority - a.Priority)
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// claimRequest asks for up to most commands with a lease of a minute.
func claimRequest(owner string, most, perProject int) domain.ClaimRequest {
	now := time.Now()
	return domain.ClaimRequest{Owner: owner, Max: most, PerProject: perProject, LeaseUntil: now.Add(time.Minute), Now: now}
}

func succeeded() domain.Finish {
	return domain.Finish{Status: domain.CommandSucceeded, ExitCode: ptr(0), FinishedAt: time.Now()}
}

func mustCreateCommands(tb testing.TB, ctx context.Context, repo domain.CommandRepository, cs []*domain.Command) {
	tb.Helper()
	for _, c := range cs {
		mustCreateCommand(tb, ctx, repo, c)
	}
}

func mustClaim(tb testing.TB, ctx context.Context, repo domain.CommandRepository, r domain.ClaimRequest) []*domain.Command {
	tb.Helper()
	cs, err := repo.ClaimCommands(ctx, r)
	if err != nil {
		tb.Fatalf("ClaimCommands(%+v): %v", r, err)
	}
	return cs
}

func mustFinish(tb testing.TB, ctx context.Context, repo domain.CommandRepository, c *domain.Command, f domain.Finish) *domain.Command {
	tb.Helper()
	got, err := repo.FinishCommand(ctx, domain.Lease{CommandID: c.ID, Owner: c.Owner, Epoch: 1}, f, nil)
	if err != nil {
		tb.Fatalf("FinishCommand(%s, %s): %v", c.ID, c.Owner, err)
	}
	return got
}

func mustRequestCancel(tb testing.TB, ctx context.Context, repo domain.CommandRepository, id string) *domain.Command {
	tb.Helper()
	c, err := repo.RequestCancel(ctx, id, "cancelled in a test", time.Now(), nil)
	if err != nil {
		tb.Fatalf("RequestCancel(%s): %v", id, err)
	}
	return c
}

// commandIDs returns the IDs of cs, in order.
func commandIDs(cs []*domain.Command) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}
