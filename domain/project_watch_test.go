package domain

import (
	"context"
	"testing"
	"time"
)

func TestProjectService_Watch(t *testing.T) {
	reader := &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeProjectsRead}}
	project := func(id string, st ProjectStatus) *Project {
		return &Project{ID: id, Namespace: "rdev", Status: st, Labels: map[string]string{"team": "a"}}
	}
	recv := func(t *testing.T, ch <-chan *Project) *Project {
		t.Helper()
		select {
		case p, ok := <-ch:
			if !ok {
				t.Fatal("watch ended")
			}
			return p
		case <-time.After(5 * time.Second):
			t.Fatal("no change arrived")
			return nil
		}
	}
	quiet := func(t *testing.T, ch <-chan *Project) {
		t.Helper()
		select {
		case p := <-ch:
			t.Fatalf("unexpected change %+v", p)
		case <-time.After(50 * time.Millisecond):
		}
	}

	t.Run("OneStartsWithItsState", func(t *testing.T) {
		hub := newFakeHub()
		s := NewProjectService(newProjectRepo(project("web", ProjectRunning), project("api", ProjectRunning)), hub)
		ch, err := s.Watch(keyContext(t, reader), "web")
		if err != nil {
			t.Fatal(err)
		}
		if p := recv(t, ch); p.ID != "web" || p.Status != ProjectRunning {
			t.Fatalf("first = %+v, want web RUNNING", p)
		}
		s.Changed(project("api", ProjectNotReady)) // another project
		s.Changed(project("web", ProjectRunning))  // no change
		s.Changed(project("web", ProjectNotReady))
		if p := recv(t, ch); p.ID != "web" || p.Status != ProjectNotReady {
			t.Fatalf("change = %+v, want web NOT_READY", p)
		}
		labelled := project("web", ProjectNotReady)
		labelled.Labels = map[string]string{"team": "b"}
		s.Changed(labelled)
		if p := recv(t, ch); p.Labels["team"] != "b" {
			t.Fatalf("change = %+v, want the new label", p)
		}
		quiet(t, ch)
	})

	t.Run("Every", func(t *testing.T) {
		s := NewProjectService(newProjectRepo(project("web", ProjectRunning)), newFakeHub())
		ch, err := s.Watch(keyContext(t, reader), "")
		if err != nil {
			t.Fatal(err)
		}
		if p := recv(t, ch); p.ID != "web" || p.Status != ProjectRunning {
			t.Fatalf("first = %+v, want web RUNNING: a watch starts with the current state", p)
		}
		quiet(t, ch)
		s.Changed(project("api", ProjectPending))
		s.Changed(project("web", ProjectGone))
		if p := recv(t, ch); p.ID != "api" || p.Status != ProjectPending {
			t.Errorf("first change = %+v", p)
		}
		if p := recv(t, ch); p.ID != "web" || p.Status != ProjectGone {
			t.Errorf("second change = %+v", p)
		}
	})

	// A watcher that falls behind is dropped by the hub and catches up with
	// the current state, once, instead of every change it missed.
	t.Run("Lagging", func(t *testing.T) {
		hub := newFakeHub()
		repo := newProjectRepo(project("web", ProjectRunning))
		s := NewProjectService(repo, hub)
		ch, err := s.Watch(keyContext(t, reader), "web")
		if err != nil {
			t.Fatal(err)
		}
		recv(t, ch)
		// The current state, which the catch-up reads whenever it comes
		// (it may come while the changes below are still being sent).
		repo.mu.Lock()
		repo.projects["web"] = project("web", ProjectFailed)
		repo.mu.Unlock()
		// Flip the state more often than the buffer holds, without reading.
		for i := range projectWatchBuffer * 3 {
			st := ProjectNotReady
			if i%2 == 1 {
				st = ProjectRunning
			}
			s.Changed(project("web", st))
		}
		if hub.dropCount() == 0 {
			t.Fatal("the watcher was never dropped: the test proves nothing")
		}
		// Whatever was buffered arrives, then the current state; never
		// the same state twice in a row.
		var last *Project
		for deadline := time.After(5 * time.Second); last == nil || last.Status != ProjectFailed; {
			select {
			case p := <-ch:
				if last != nil && p.Status == last.Status {
					t.Fatalf("state %s sent twice in a row", p.Status)
				}
				last = p
			case <-deadline:
				t.Fatalf("never caught up to FAILED; last %+v", last)
			}
		}
	})

	// Catching up on every project sends a project deleted meanwhile as
	// GONE, once.
	t.Run("EveryLaggingDeleted", func(t *testing.T) {
		hub := newFakeHub()
		repo := newProjectRepo(project("web", ProjectRunning), project("api", ProjectRunning))
		s := NewProjectService(repo, hub)
		ch, err := s.Watch(keyContext(t, reader), "")
		if err != nil {
			t.Fatal(err)
		}
		recv(t, ch)
		recv(t, ch)
		repo.mu.Lock()
		delete(repo.projects, "api")
		repo.mu.Unlock()
		for i := range projectWatchBuffer * 3 {
			st := ProjectNotReady
			if i%2 == 1 {
				st = ProjectRunning
			}
			s.Changed(project("web", st))
		}
		if hub.dropCount() == 0 {
			t.Fatal("the watcher was never dropped: the test proves nothing")
		}
		gone := 0
		for deadline := time.After(5 * time.Second); gone == 0; {
			select {
			case p := <-ch:
				if p.ID == "api" {
					if p.Status != ProjectGone {
						t.Fatalf("api sent as %s after its deletion", p.Status)
					}
					gone++
				}
			case <-deadline:
				t.Fatal("the deleted project was never sent as GONE")
			}
		}
		for {
			select {
			case p := <-ch:
				if p.ID == "api" {
					t.Fatalf("api sent again: %+v", p)
				}
				continue
			case <-time.After(50 * time.Millisecond):
			}
			break
		}
	})

	t.Run("EndsWithContext", func(t *testing.T) {
		hub := newFakeHub()
		s := NewProjectService(newProjectRepo(project("web", ProjectRunning)), hub)
		ctx, cancel := context.WithCancel(keyContext(t, reader))
		ch, err := s.Watch(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		for range ch {
		}
		if n := hub.subscribers(ProjectsTopic); n != 0 {
			t.Errorf("%d subscriptions left", n)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		hub := newFakeHub()
		s := NewProjectService(newProjectRepo(), hub)
		_, err := s.Watch(keyContext(t, reader), "web")
		wantCode(t, err, ENOTFOUND)
		if n := hub.subscribers(ProjectsTopic); n != 0 {
			t.Errorf("%d subscriptions left", n)
		}
	})

	t.Run("ErrForbidden", func(t *testing.T) {
		s := NewProjectService(newProjectRepo(), newFakeHub())
		_, err := s.Watch(keyContext(t, &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeKeysRead}}), "")
		wantCode(t, err, EFORBIDDEN)
	})
}
