package domain

import (
	"context"
	"maps"
)

// projectWatchBuffer is how many changes may wait for a slow watcher before
// the hub drops it and it catches up from the repository.
const projectWatchBuffer = 64

// Changed publishes a project's new state to watchers. The project
// repository calls it (through the wiring) whenever a project's status,
// labels or annotations change.
func (s *ProjectService) Changed(p *Project) {
	s.hub.Publish(ProjectsTopic, Event{Kind: EventProject, Project: p})
}

// Watch streams changes of one project (id non-empty) or of every project,
// until ctx ends. A watch starts with the current state of what it watches
// (of every project in the caller's scope when id is empty), so a client
// never misses a change between reading and watching. A watcher
// that falls behind catches up with the current state of what changed
// meanwhile and never receives a state it was already sent. Only projects
// in the caller's project scope are sent, judged on each state: one that
// leaves it (relabelled) is sent once more as GONE, as a deleted one is,
// and one that enters it is sent from then on. It needs projects:read;
// ENOTFOUND for an unknown project or one outside the scope.
func (s *ProjectService) Watch(ctx context.Context, id string) (<-chan *Project, error) {
	caller, err := Authorize(ctx, ScopeProjectsRead)
	if err != nil {
		return nil, err
	}
	var first *Project
	// Subscribe before reading, so a change made in between is not lost.
	sub := s.hub.Subscribe(ProjectsTopic, projectWatchBuffer)
	if id != "" {
		p, err := s.Get(ctx, id)
		if err != nil {
			sub.Close()
			return nil, err
		}
		first = p
	}
	out := make(chan *Project, 4)
	w := &projectWatch{s: s, id: id, scope: caller.Projects(), sent: map[string]*Project{}, out: out}
	go func() {
		defer close(out)
		var started bool
		if first != nil {
			started = w.send(ctx, first)
		} else {
			started = w.catchUp(ctx) // every project's current state
		}
		if !started {
			sub.Close()
			return
		}
		handle := func(e Event) bool {
			return e.Kind != EventProject || e.Project == nil || (w.id != "" && e.Project.ID != w.id) || w.send(ctx, e.Project)
		}
		tail(ctx, s.hub, ProjectsTopic, projectWatchBuffer, sub, handle, func() bool { return w.catchUp(ctx) })
	}()
	return out, nil
}

// projectWatch is one watcher's stream.
type projectWatch struct {
	s     *ProjectService
	id    string              // "" for every project
	scope ProjectScope        // the watcher's project scope
	sent  map[string]*Project // the last state sent, by project
	out   chan<- *Project
}

// catchUp sends the current state of the watched projects that differs from
// what was sent. A watched project that is gone from the repository is sent
// as GONE. It returns false when the stream must end.
func (w *projectWatch) catchUp(ctx context.Context) bool {
	var current []*Project
	if w.id != "" {
		p, err := w.s.repo.FindProjectByID(ctx, w.id)
		switch {
		case ErrorCode(err) == ENOTFOUND:
			if prev := w.sent[w.id]; prev != nil {
				gone := *prev
				gone.Status = ProjectGone
				current = []*Project{&gone}
			}
		case err != nil:
			streamFailed(ctx, err)
			return false
		default:
			current = []*Project{p}
		}
	} else {
		for after := ""; ; {
			ps, err := w.s.repo.FindProjects(ctx, ProjectFilter{AfterID: after, Limit: MaxPageSize})
			if err != nil {
				streamFailed(ctx, err)
				return false
			}
			current = append(current, ps...)
			if len(ps) < MaxPageSize {
				break
			}
			after = ps[len(ps)-1].ID
		}
		current = append(current, w.vanished(current)...)
	}
	for _, p := range current {
		if !w.send(ctx, p) {
			return false
		}
	}
	return true
}

// vanished returns, as GONE, the projects last sent as present that are not
// among current.
func (w *projectWatch) vanished(current []*Project) []*Project {
	present := make(map[string]bool, len(current))
	for _, p := range current {
		present[p.ID] = true
	}
	var gone []*Project
	for id, prev := range w.sent {
		if !present[id] && prev.Status != ProjectGone {
			g := *prev
			g.Status = ProjectGone
			gone = append(gone, &g)
		}
	}
	return gone
}

// send passes p on unless it equals the state last sent of that project.
// A state outside the watcher's scope is not sent: in its place the last
// state sent, if any, goes once more as GONE.
func (w *projectWatch) send(ctx context.Context, p *Project) bool {
	if !w.scope.Admits(p) {
		prev := w.sent[p.ID]
		if prev == nil || prev.Status == ProjectGone {
			return true
		}
		gone := *prev
		gone.Status = ProjectGone
		p = &gone
	}
	if prev := w.sent[p.ID]; prev != nil && sameProjectState(prev, p) {
		return true
	}
	w.sent[p.ID] = p
	select {
	case w.out <- p:
		return true
	case <-ctx.Done():
		return false
	}
}

// sameProjectState reports whether a and b differ in nothing a watcher sees.
func sameProjectState(a, b *Project) bool {
	return a.Status == b.Status && a.Namespace == b.Namespace &&
		maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations)
}
