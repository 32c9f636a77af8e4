package domain

import (
	"context"
	"maps"
	"slices"
	"time"
)

// ProjectStatus is the state of a project's pod (or local directory).
type ProjectStatus string

// The project states.
const (
	ProjectPending  ProjectStatus = "PENDING"
	ProjectRunning  ProjectStatus = "RUNNING"
	ProjectNotReady ProjectStatus = "NOT_READY"
	ProjectFailed   ProjectStatus = "FAILED"
	ProjectGone     ProjectStatus = "GONE"
)

// ProjectStatuses lists every project state.
var ProjectStatuses = []ProjectStatus{ProjectPending, ProjectRunning, ProjectNotReady, ProjectFailed, ProjectGone}

// MaxProjectIDLength is the longest project ID (a DNS-1123 label).
const MaxProjectIDLength = 63

// Project is a long-lived development environment that commands run in: a
// labelled pod on Kubernetes, a directory in embedded mode.
type Project struct {
	// ID is the project's name, unique within rdev.
	ID          string
	Namespace   string
	Status      ProjectStatus
	Labels      map[string]string
	Annotations map[string]string
	CreatedAt   time.Time
}

// ProjectFilter selects projects for FindProjects, sorted by ID. Zero fields
// select everything.
type ProjectFilter struct {
	Status  ProjectStatus
	Labels  map[string]string
	AfterID string
	Limit   int
}

// Matches reports whether p passes the status and label parts of the filter.
func (f ProjectFilter) Matches(p *Project) bool {
	if f.Status != "" && p.Status != f.Status {
		return false
	}
	for k, v := range f.Labels {
		if got, ok := p.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ProjectRepository is where projects come from: a local directory tree or a
// Kubernetes informer cache. Reads are cheap and never hit a remote API per
// call.
type ProjectRepository interface {
	// FindProjectByID returns ENOTFOUND if there is no such project.
	FindProjectByID(ctx context.Context, id string) (*Project, error)
	// FindProjects returns the matching projects sorted by ID.
	FindProjects(ctx context.Context, f ProjectFilter) ([]*Project, error)
}

// ProjectService answers questions about projects and follows their
// changes.
type ProjectService struct {
	repo ProjectRepository
	hub  Hub
}

// NewProjectService returns a service over repo that publishes and follows
// project changes on hub.
func NewProjectService(repo ProjectRepository, hub Hub) *ProjectService {
	return &ProjectService{repo: repo, hub: hub}
}

// Get returns a project. It needs projects:read; ENOTFOUND if there is none.
func (s *ProjectService) Get(ctx context.Context, id string) (*Project, error) {
	if _, err := Authorize(ctx, ScopeProjectsRead); err != nil {
		return nil, err
	}
	if ValidateProjectID(id) != nil {
		return nil, Errorf(ENOTFOUND, "project %q not found", Clip(id))
	}
	return s.repo.FindProjectByID(ctx, id)
}

// List returns a page of projects sorted by ID. It needs projects:read.
func (s *ProjectService) List(ctx context.Context, f ProjectFilter, req PageRequest) (Page[*Project], error) {
	if _, err := Authorize(ctx, ScopeProjectsRead); err != nil {
		return Page[*Project]{}, err
	}
	if f.Status != "" && !validProjectStatus(f.Status) {
		return Page[*Project]{}, Errorf(EINVALID, "status: unknown project status %q", Clip(string(f.Status)))
	}
	if err := ValidateLabelFilter(f.Labels); err != nil {
		return Page[*Project]{}, err
	}
	f.Labels = maps.Clone(f.Labels)
	f.AfterID, f.Limit = req.After, req.First+1
	ps, err := s.repo.FindProjects(ctx, f)
	if err != nil {
		return Page[*Project]{}, err
	}
	return pageOf(ps, req), nil
}

func validProjectStatus(s ProjectStatus) bool { return slices.Contains(ProjectStatuses, s) }
