package domain

import (
	"context"
	"slices"
	"strings"
)

// Limits of a project scope.
const (
	// MaxScopeProjects bounds the project names of one scope.
	MaxScopeProjects = 100
	// MaxScopeSelectors bounds the label selectors of one scope.
	MaxScopeSelectors = 16
)

// ProjectScope is the set of projects a principal may see and act on: the
// projects named, and those whose current labels match one of the
// selectors. The zero scope is unrestricted: every project, present and
// future. It is a value on its own (not tied to API keys), so that a team
// or organisation can later carry one and a key inherit it.
//
// A name admits the project of that name whether it exists or not (a
// command of a deleted project stays in scope); a selector admits only a
// project that exists now and carries matching labels (a command of a
// deleted project is out of a selector's scope).
type ProjectScope struct {
	// Names are project IDs, sorted, without duplicates.
	Names []string
	// Selectors are sorted by their canonical text, without duplicates.
	Selectors []LabelSelector
}

// NewProjectScope validates project names and selector texts into a scope.
// No names and no selectors make the unrestricted scope. It returns
// EINVALID, naming the field, for a bad name or selector or too many.
func NewProjectScope(names, selectors []string) (ProjectScope, error) {
	if len(names) > MaxScopeProjects {
		return ProjectScope{}, Errorf(EINVALID, "projects: at most %d names", MaxScopeProjects)
	}
	if len(selectors) > MaxScopeSelectors {
		return ProjectScope{}, Errorf(EINVALID, "projectSelectors: at most %d selectors", MaxScopeSelectors)
	}
	var s ProjectScope
	for _, n := range names {
		if err := ValidateProjectID(n); err != nil {
			return ProjectScope{}, Errorf(EINVALID, "projects: %q is not a project name (a DNS-1123 label)", Clip(n))
		}
		s.Names = append(s.Names, n)
	}
	for _, text := range selectors {
		sel, err := ParseLabelSelector(text)
		if err != nil {
			return ProjectScope{}, Errorf(EINVALID, "projectSelectors: %s", ErrorMessage(err))
		}
		s.Selectors = append(s.Selectors, sel)
	}
	return s.normalize(), nil
}

func (s ProjectScope) normalize() ProjectScope {
	s.Names = slices.Compact(slices.Sorted(slices.Values(s.Names)))
	s.Selectors = slices.Clone(s.Selectors)
	slices.SortFunc(s.Selectors, func(a, b LabelSelector) int { return strings.Compare(a.String(), b.String()) })
	s.Selectors = slices.CompactFunc(s.Selectors, func(a, b LabelSelector) bool { return a.String() == b.String() })
	return s
}

// Unrestricted reports whether the scope admits every project.
func (s ProjectScope) Unrestricted() bool { return len(s.Names) == 0 && len(s.Selectors) == 0 }

// SelectorStrings returns the selectors' canonical texts.
func (s ProjectScope) SelectorStrings() []string {
	out := make([]string, len(s.Selectors))
	for i, sel := range s.Selectors {
		out[i] = sel.String()
	}
	return out
}

// String describes the scope for messages and audit details.
func (s ProjectScope) String() string {
	if s.Unrestricted() {
		return "every project"
	}
	parts := slices.Clone(s.Names)
	for _, sel := range s.SelectorStrings() {
		parts = append(parts, "{"+sel+"}")
	}
	return strings.Join(parts, " ")
}

// AdmitsName reports whether the scope admits the project named id by its
// name alone: it is unrestricted or lists id.
func (s ProjectScope) AdmitsName(id string) bool {
	return s.Unrestricted() || slices.Contains(s.Names, id)
}

// Admits reports whether the scope admits p, a project as it is now.
func (s ProjectScope) Admits(p *Project) bool {
	if s.AdmitsName(p.ID) {
		return true
	}
	for _, sel := range s.Selectors {
		if sel.Matches(p.Labels) {
			return true
		}
	}
	return false
}

// Within returns nil if s admits no project that parent does not, judged
// from the scopes' text alone (labels change, so a name is within parent
// only through parent's names): an unrestricted parent holds every scope;
// otherwise each of s's names must be among parent's, and each of s's
// selectors must have every requirement of one of parent's. It returns
// EFORBIDDEN, naming what is wider, otherwise.
func (s ProjectScope) Within(parent ProjectScope) error {
	if parent.Unrestricted() {
		return nil
	}
	if s.Unrestricted() {
		return Errorf(EFORBIDDEN, "project scope: this key is limited to %s and cannot grant every project", parent)
	}
	for _, n := range s.Names {
		if !slices.Contains(parent.Names, n) {
			return Errorf(EFORBIDDEN, "project scope: project %q is not among this key's projects (%s); "+
				"a name is granted only by a key that lists it, since labels may change", n, parent)
		}
	}
	for _, sel := range s.Selectors {
		if !slices.ContainsFunc(parent.Selectors, sel.Refines) {
			return Errorf(EFORBIDDEN, "project scope: selector %q does not contain every requirement of one of this key's selectors (%s)", sel, parent)
		}
	}
	return nil
}

// Projects returns the project scope of the caller: the key's, or the
// unrestricted one for the operator.
func (c *Caller) Projects() ProjectScope {
	if c == nil || c.Key == nil {
		return ProjectScope{}
	}
	return c.Key.Projects
}

// scopeAdmits reports whether scope admits the project named id, looking
// its labels up in projects only when the name alone does not decide. A
// project that does not exist is admitted only by name.
func scopeAdmits(ctx context.Context, projects ProjectRepository, scope ProjectScope, id string) (bool, error) {
	if scope.AdmitsName(id) {
		return true, nil
	}
	if len(scope.Selectors) == 0 || projects == nil || ValidateProjectID(id) != nil {
		return false, nil
	}
	p, err := projects.FindProjectByID(ctx, id)
	switch {
	case ErrorCode(err) == ENOTFOUND:
		return false, nil
	case err != nil:
		return false, err
	}
	return scope.Admits(p), nil
}

// scopeProjectIDs returns the IDs of the projects scope admits now, sorted:
// its names, and the existing projects its selectors match. It returns nil
// for the unrestricted scope (every project), and a non-nil empty slice
// for a restricted one that admits nothing now.
func scopeProjectIDs(ctx context.Context, projects ProjectRepository, scope ProjectScope) ([]string, error) {
	if scope.Unrestricted() {
		return nil, nil
	}
	ids := slices.Clone(scope.Names)
	if len(scope.Selectors) > 0 && projects != nil {
		bySelector := ProjectFilter{Scope: ProjectScope{Selectors: scope.Selectors}, Limit: MaxPageSize}
		for after := ""; ; {
			bySelector.AfterID = after
			ps, err := projects.FindProjects(ctx, bySelector)
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				ids = append(ids, p.ID)
			}
			if len(ps) < MaxPageSize {
				break
			}
			after = ps[len(ps)-1].ID
		}
	}
	if ids == nil {
		return []string{}, nil // restricted, and nothing is admitted now
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}
