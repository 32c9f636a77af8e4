package postgres_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/hub"
)

// noopExecutor ends every command at once with exit status 0.
type noopExecutor struct{}

func (noopExecutor) Exec(context.Context, domain.ExecRequest, io.Writer, io.Writer) (domain.ExecResult, error) {
	return domain.ExecResult{}, nil
}

// allRunning is a project source where every project exists and runs.
type allRunning struct{}

func (allRunning) FindProjectByID(_ context.Context, id string) (*domain.Project, error) {
	return &domain.Project{ID: id, Status: domain.ProjectRunning}, nil
}

func (allRunning) FindProjects(context.Context, domain.ProjectFilter) ([]*domain.Project, error) {
	return nil, nil
}

// BenchmarkDispatcher runs the real Dispatcher with a no-op executor over
// b.N queued commands and reports commands claimed and finished per second,
// from the first claim to the last recorded end. Read it against
// BenchmarkClaimCommands/Baseline (one autocommitted single-row UPDATE) in
// the same run:
//
//	go test -run '^$' -bench 'Dispatcher|ClaimCommands/Baseline' -benchtime 4000x ./infra/postgres
func BenchmarkDispatcher(b *testing.B) {
	s := mustOpenShared(b, 1)[0]
	queueCommands(b, s, b.N)
	d := domain.NewDispatcher(s, allRunning{}, noopExecutor{}, hub.New(), nil, domain.DispatcherConfig{
		Concurrency: 32, PerProject: 1000, LeaseTTL: time.Minute, PollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	b.ResetTimer()
	go func() { done <- d.Run(ctx) }()
	for {
		st, err := s.QueueStats(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		queued := 0
		for _, n := range st.Queued {
			queued += n
		}
		if queued == 0 && st.Running == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
}
