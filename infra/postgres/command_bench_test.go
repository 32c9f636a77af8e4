package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
)

// BenchmarkClaimCommands measures the queue with a no-op executor: claim up
// to 32 commands, finish each at once. Baseline is one single-row UPDATE
// per op, autocommitted (a round trip and a WAL flush, as FinishCommand
// costs), for reading the others as a ratio. Run it with
//
//	go test -run '^$' -bench ClaimCommands -benchtime 20000x ./infra/postgres
func BenchmarkClaimCommands(b *testing.B) {
	b.Run("Baseline", func(b *testing.B) {
		s := mustOpenShared(b, 1)[0]
		queueCommands(b, s, 1)
		ctx := b.Context()
		id := firstID(b, s)
		b.ResetTimer()
		for i := range b.N {
			if _, err := s.DB().NewRaw("UPDATE commands SET reason = ? WHERE id = ?", fmt.Sprint(i), id).Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})

	// One dispatcher: claim, then finish each command in turn.
	b.Run("Serial", func(b *testing.B) {
		s := mustOpenShared(b, 1)[0]
		queueCommands(b, s, b.N)
		b.ResetTimer()
		n := claimAndFinish(b, s, "d1", b.N, 1)
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "claims/s")
	})

	// One dispatcher finishing its commands on 8 goroutines at once, as it
	// would run them.
	b.Run("ConcurrentFinish", func(b *testing.B) {
		s := mustOpenShared(b, 1)[0]
		queueCommands(b, s, b.N)
		b.ResetTimer()
		n := claimAndFinish(b, s, "d1", b.N, 8)
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "claims/s")
	})

	// Three processes (connection pools), each a dispatcher like the one
	// above, contending for one queue.
	b.Run("ThreeProcesses", func(b *testing.B) {
		stores := mustOpenShared(b, 3)
		queueCommands(b, stores[0], b.N)
		var total atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		for i, s := range stores {
			wg.Go(func() { total.Add(int64(claimAndFinish(b, s, fmt.Sprint("d", i), b.N, 8))) })
		}
		wg.Wait()
		b.ReportMetric(float64(total.Load())/b.Elapsed().Seconds(), "claims/s")
	})
}

// claimAndFinish claims up to 32 commands at a time under owner, finishing
// them on finishers goroutines, until it has claimed most or the queue is
// empty. It returns how many it claimed.
func claimAndFinish(b *testing.B, s *bunstore.Store, owner string, most, finishers int) int {
	ctx := b.Context()
	work := make(chan *domain.Command, 64)
	var wg sync.WaitGroup
	for range finishers {
		wg.Go(func() {
			for c := range work {
				f := domain.Finish{Status: domain.CommandSucceeded, ExitCode: new(int), FinishedAt: time.Now()}
				if _, err := s.FinishCommand(ctx, domain.Lease{CommandID: c.ID, Owner: owner, Epoch: 1}, f, nil); err != nil {
					b.Error(err)
				}
			}
		})
	}
	n := 0
	for n < most {
		now := time.Now()
		cs, err := s.ClaimCommands(ctx, domain.ClaimRequest{
			Owner: owner, Max: 32, PerProject: 1000, LeaseUntil: now.Add(time.Minute), Now: now,
		})
		if err != nil {
			b.Fatal(err)
		}
		if len(cs) == 0 {
			break
		}
		for _, c := range cs {
			work <- c
		}
		n += len(cs)
	}
	close(work)
	wg.Wait()
	return n
}

// BenchmarkAppendOutput compares AppendOutput, unfenced and fenced (under a
// command's lease, which also locks and updates the command's row), with a
// bare INSERT of the same rows, for batches of 20 lines, all committed
// durably.
func BenchmarkAppendOutput(b *testing.B) {
	const batch = 20
	chunks := func(id string, i int) []domain.OutputChunk {
		out := make([]domain.OutputChunk, batch)
		for j := range out {
			out[j] = domain.OutputChunk{CommandID: id, Seq: int64(i*batch + j + 1), Stream: domain.Stdout,
				Data: strings.Repeat("x", 79) + "\n", At: time.Now()}
		}
		return out
	}
	b.Run("AppendOutput", func(b *testing.B) {
		s := mustOpenShared(b, 1)[0]
		queueCommands(b, s, 1)
		id := firstID(b, s)
		b.ResetTimer()
		for i := range b.N {
			if err := s.AppendOutput(b.Context(), domain.Lease{}, chunks(id, i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
	})
	b.Run("Fenced", func(b *testing.B) {
		s := mustOpenShared(b, 1)[0]
		queueCommands(b, s, 1)
		now := time.Now()
		cs, err := s.ClaimCommands(b.Context(), domain.ClaimRequest{Owner: "d1", Max: 1, LeaseUntil: now.Add(time.Hour), Now: now})
		if err != nil || len(cs) != 1 {
			b.Fatalf("claim: %v, %v", cs, err)
		}
		b.ResetTimer()
		for i := range b.N {
			if err := s.AppendOutput(b.Context(), cs[0].Lease(), chunks(cs[0].ID, i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
	})
	b.Run("BareInsert", func(b *testing.B) {
		s := mustOpenShared(b, 1)[0]
		queueCommands(b, s, 1)
		id := firstID(b, s)
		b.ResetTimer()
		for i := range b.N {
			var rows []string
			for _, c := range chunks(id, i) {
				rows = append(rows, fmt.Sprintf("('%s', %d, 'STDOUT', '%s'::bytea, now())", c.CommandID, c.Seq, c.Data[:len(c.Data)-1]))
			}
			q := "INSERT INTO command_output (command_id, seq, stream, data, at) VALUES " + strings.Join(rows, ", ")
			if _, err := s.DB().ExecContext(b.Context(), q); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "batches/s")
	})
}

// queueCommands queues n commands in 1,000 projects with mixed priorities, in
// one statement.
func queueCommands(tb testing.TB, s *bunstore.Store, n int) {
	tb.Helper()
	_, err := s.DB().ExecContext(tb.Context(), `
		INSERT INTO commands (id, project_id, key_id, type, argv, priority, status, created_at)
		SELECT 'c' || lpad(i::text, 12, '0'), 'project-' || (i % 1000), 'key', 'EXEC', '["true"]', i % 4 - 1, 'QUEUED', now()
		FROM generate_series(1, ?) AS i`, n)
	if err != nil {
		tb.Fatalf("queue %d commands: %v", n, err)
	}
	if _, err := s.DB().ExecContext(tb.Context(), "ANALYZE commands"); err != nil {
		tb.Fatal(err)
	}
}

func firstID(tb testing.TB, s *bunstore.Store) string {
	tb.Helper()
	var id string
	if err := s.DB().NewRaw("SELECT min(id) FROM commands").Scan(context.Background(), &id); err != nil {
		tb.Fatal(err)
	}
	return id
}
