package local

import (
	"maps"
	"slices"
	"strings"

	"github.com/rdev-hq/rdev/domain"
)

// snapshot is every project under the root at one time. It is never changed
// once built, since readers share it: a change builds a new one (with), and
// callers get copies of its projects (clone).
type snapshot struct {
	byID map[string]*domain.Project
	list []*domain.Project // sorted by ID
}

func newSnapshot(byID map[string]*domain.Project) *snapshot {
	list := slices.Collect(maps.Values(byID))
	slices.SortFunc(list, func(a, b *domain.Project) int { return strings.Compare(a.ID, b.ID) })
	return &snapshot{byID: byID, list: list}
}

// with returns s with the projects named in changed replaced by their new
// state, or removed where that is nil.
func (s *snapshot) with(changed map[string]*domain.Project) *snapshot {
	byID := maps.Clone(s.byID)
	for id, p := range changed {
		if p == nil {
			delete(byID, id)
		} else {
			byID[id] = p
		}
	}
	return newSnapshot(byID)
}

// find is FindProjects over the snapshot.
func (s *snapshot) find(f domain.ProjectFilter) []*domain.Project {
	out := []*domain.Project{}
	i, found := slices.BinarySearchFunc(s.list, f.AfterID, func(p *domain.Project, id string) int { return strings.Compare(p.ID, id) })
	if found {
		i++
	}
	for _, p := range s.list[i:] {
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
		if f.Matches(p) {
			out = append(out, clone(p))
		}
	}
	return out
}

// clone returns a copy of p that its receiver may change.
func clone(p *domain.Project) *domain.Project {
	c := *p
	c.Labels, c.Annotations = copyMap(p.Labels), copyMap(p.Annotations)
	return &c
}

// copyMap copies m; unlike maps.Clone, it allocates no table for an empty
// map, the common case.
func copyMap(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	maps.Copy(c, m)
	return c
}
