package sqlite_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
)

// BenchmarkSmallWrites measures the store's small transactions, which a
// larger page makes write more bytes to the WAL: "update" is one
// autocommitted single-row UPDATE of a command, "claim" claims one queued
// command and finishes it (two transactions, as the dispatcher makes them).
// cpu-ns/op is the whole process's CPU time, background checkpoints
// included. Run it with
//
//	go test -run '^$' -bench SmallWrites -benchtime 2000x -count 6 ./infra/sqlite
func BenchmarkSmallWrites(b *testing.B) {
	b.Run("update", func(b *testing.B) {
		s := mustOpenMigrated(b)
		id := queueCommands(b, s, 1)[0]
		ctx := b.Context()
		cpu := startCPU(b)
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.DB().ExecContext(ctx, "UPDATE commands SET reason = ? WHERE id = ?", strconv.Itoa(i), id); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		checkpoint(b, s)
		cpu.report(b, int64(b.N), "cpu-ns/op")
	})
	b.Run("claim", func(b *testing.B) {
		s := mustOpenMigrated(b)
		ctx := b.Context()
		cpu := startCPU(b)
		b.ResetTimer()
		for i := range b.N {
			// The queue is refilled off the clock, and kept short: a claim's
			// cost grows with the queue, which is not what this measures.
			if i%claimQueue == 0 {
				b.StopTimer()
				queueCommands(b, s, claimQueue)
				b.StartTimer()
			}
			now := time.Now()
			cs, err := s.ClaimCommands(ctx, domain.ClaimRequest{Owner: "d1", Max: 1, PerProject: 1000, LeaseUntil: now.Add(time.Minute), Now: now})
			if err != nil || len(cs) != 1 {
				b.Fatalf("ClaimCommands = %d commands, %v; want 1", len(cs), err)
			}
			f := domain.Finish{Status: domain.CommandSucceeded, ExitCode: new(int), FinishedAt: time.Now()}
			if _, err := s.FinishCommand(ctx, cs[0].Lease(), f, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		checkpoint(b, s)
		cpu.report(b, int64(b.N), "cpu-ns/op")
	})
}

// claimQueue is how many commands BenchmarkSmallWrites/claim queues at a
// time.
const claimQueue = 100

// queueCommands creates n queued commands in 100 projects and returns their
// IDs, in creation order.
func queueCommands(tb testing.TB, s *bunstore.Store, n int) []string {
	tb.Helper()
	base := time.Now()
	ids := make([]string, n)
	for i := range ids {
		at := base.Add(time.Duration(i) * time.Millisecond)
		c := &domain.Command{ID: domain.NewID(at), ProjectID: "project-" + strconv.Itoa(i%100), KeyID: "key",
			Type: domain.CommandExec, Argv: []string{"true"}, Status: domain.CommandQueued, CreatedAt: at}
		if err := s.CreateCommand(tb.Context(), c, nil); err != nil {
			tb.Fatal(err)
		}
		ids[i] = c.ID
	}
	return ids
}
