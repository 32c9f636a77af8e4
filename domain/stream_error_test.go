package domain

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// streamReport collects what streams report through WithStreamErrors.
type streamReport struct {
	mu   sync.Mutex
	errs []error
}

func (r *streamReport) report(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *streamReport) reported() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

// TestCommandService_Output_StorageFailsReports: a stream whose storage
// reads fail says why before its channel closes, so the subscription can
// end with an error to resume from rather than as if it were over.
func TestCommandService_Output_StorageFailsReports(t *testing.T) {
	t.Run("Uncoded", func(t *testing.T) {
		e := newCommandEnv(t)
		p := newProducer(t, e)
		p.mustEmit(t, 2)
		cause := errors.New("read output: pq: unexpected EOF")
		e.repo.set(func(r *commandRepo) { r.readErr = cause })
		var r streamReport
		collectOutput(t, output(t, WithStreamErrors(t.Context(), r.report), e, p.id, 0))
		errs := r.reported()
		if len(errs) != 1 || ErrorCode(errs[0]) != EUNAVAILABLE || !errors.Is(errs[0], cause) {
			t.Fatalf("reported %v; want one UNAVAILABLE error wrapping the cause", errs)
		}
	})

	t.Run("KeepsCode", func(t *testing.T) {
		e := newCommandEnv(t)
		p := newProducer(t, e)
		p.mustEmit(t, 2)
		cause := fmt.Errorf("read output: %w", Errorf(EUNAVAILABLE, "the database is unavailable"))
		e.repo.set(func(r *commandRepo) { r.readErr = cause })
		var r streamReport
		ch := output(t, WithStreamErrors(t.Context(), r.report), e, p.id, 0)
		collectOutput(t, ch)
		if errs := r.reported(); len(errs) != 1 || errs[0] != cause {
			t.Fatalf("reported %v; want the store's error as it was", errs)
		}
	})

	t.Run("CommandUnreadable", func(t *testing.T) {
		// The stream falls behind, and when it catches up the command's
		// state cannot be read.
		e := newCommandEnv(t)
		p := newProducer(t, e)
		var r streamReport
		ch := output(t, WithStreamErrors(t.Context(), r.report), e, p.id, 0)
		p.mustEmit(t, 4*streamBuffer)
		waitFor(t, "the hub to drop the stream", func() bool { return e.hub.dropCount() > 0 })
		e.repo.set(func(r *commandRepo) { r.findErr = errors.New("connection reset by peer") })
		collectOutput(t, ch)
		if errs := r.reported(); len(errs) != 1 || ErrorCode(errs[0]) != EUNAVAILABLE {
			t.Fatalf("reported %v; want one UNAVAILABLE error", errs)
		}
	})

	t.Run("NotWhenCancelled", func(t *testing.T) {
		// A receiver that has gone away is told nothing.
		e := newCommandEnv(t)
		p := newProducer(t, e)
		e.repo.set(func(r *commandRepo) { r.readErr = context.Canceled })
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		var r streamReport
		collectOutput(t, output(t, WithStreamErrors(ctx, r.report), e, p.id, 0))
		if errs := r.reported(); len(errs) != 0 {
			t.Fatalf("reported %v to a cancelled stream", errs)
		}
	})
}

// TestCommandService_Events_StorageFailsReports: a commandEvents stream
// that cannot catch up from storage says why before its channel closes.
func TestCommandService_Events_StorageFailsReports(t *testing.T) {
	e := newCommandEnv(t)
	var r streamReport
	ch, err := e.svc.Events(WithStreamErrors(keyContext(t, readerKey), r.report), "web")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the events subscription", func() bool { return e.hub.subscribers(ProjectTopic("web")) == 1 })
	e.repo.set(func(r *commandRepo) { r.findErr = errors.New("dial tcp: connection refused") })
	dropEventsReader(t, e, ch, "web")
	for range ch {
	}
	if errs := r.reported(); len(errs) != 1 || ErrorCode(errs[0]) != EUNAVAILABLE {
		t.Fatalf("reported %v; want one UNAVAILABLE error", errs)
	}
}

// downProjects is a ProjectRepository whose source can go down.
type downProjects struct {
	*projectRepo
	down atomic.Bool
}

func (r *downProjects) FindProjects(ctx context.Context, f ProjectFilter) ([]*Project, error) {
	if r.down.Load() {
		return nil, errors.New("the Kubernetes API server is unreachable")
	}
	return r.projectRepo.FindProjects(ctx, f)
}

// TestProjectService_Watch_StorageFailsReports: a projectStatus stream
// that cannot catch up from its source says why before its channel closes.
func TestProjectService_Watch_StorageFailsReports(t *testing.T) {
	hub := newFakeHub()
	repo := &downProjects{projectRepo: newProjectRepo(&Project{ID: "web", Status: ProjectRunning})}
	s := NewProjectService(repo, hub)
	var r streamReport
	reader := &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeProjectsRead}}
	ch, err := s.Watch(WithStreamErrors(keyContext(t, reader), r.report), "")
	if err != nil {
		t.Fatal(err)
	}
	if p := <-ch; p == nil || p.ID != "web" {
		t.Fatalf("first state = %+v, want web", p)
	}
	repo.down.Store(true)
	// Changes nobody reads, until the hub drops the watcher; it then
	// catches up from the repository, which is down.
	for i := range 2 * projectWatchBuffer {
		s.Changed(&Project{ID: fmt.Sprintf("p%d", i), Status: ProjectRunning})
	}
	waitFor(t, "the hub to drop the watcher", func() bool { return hub.dropCount() > 0 })
	for range ch {
	}
	if errs := r.reported(); len(errs) != 1 || ErrorCode(errs[0]) != EUNAVAILABLE {
		t.Fatalf("reported %v; want one UNAVAILABLE error", errs)
	}
}
