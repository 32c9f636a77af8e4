package local

import (
	"context"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// Watched reports whether p answers from memory now, and if not, why the
// watcher last stood down.
func Watched(p *Projects) (bool, error) {
	p.watch.mu.Lock()
	defer p.watch.mu.Unlock()
	return p.watch.armed, p.watch.failed
}

// SetRearmDelay sets how long p's watcher stands down after a failed start.
func SetRearmDelay(p *Projects, d time.Duration) {
	p.watch.mu.Lock()
	defer p.watch.mu.Unlock()
	p.watch.delay, p.watch.retryAt = d, time.Time{}
}

// ReadProjects is FindProjects read from the file system, never from memory.
func ReadProjects(ctx context.Context, p *Projects, f domain.ProjectFilter) ([]*domain.Project, error) {
	return p.findProjects(ctx, f)
}

// ReadProject is FindProjectByID read from the file system.
func ReadProject(p *Projects, id string) (*domain.Project, error) {
	info, err := p.stat(id)
	if err != nil {
		return nil, err
	}
	return p.load(id, info)
}
