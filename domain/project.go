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
	Status ProjectStatus
	Labels map[string]string
	// Scope keeps only the projects it admits (the caller's project scope);
	// the zero scope keeps every one.
	Scope   ProjectScope
	AfterID string
	Limit   int
}

// Matches reports whether p passes the status, label and scope parts of
// the filter. Every ProjectRepository filters with it.
func (f ProjectFilter) Matches(p *Project) bool {
	if f.Status != "" && p.Status != f.Status {
		return false
	}
	if !f.Scope.Admits(p) {
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
	// FindProjects returns the projects that match f (f.Matches, which
	// includes f.Scope) sorted by ID.
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

// Get returns a project. It needs projects:read; ENOTFOUND if there is none
// or it is outside the caller's project scope.
func (s *ProjectService) Get(ctx context.Context, id string) (*Project, error) {
	caller, err := Authorize(ctx, ScopeProjectsRead)
	if err != nil {
		return nil, err
	}
	if ValidateProjectID(id) != nil {
		return nil, projectNotFound(id)
	}
	p, err := s.repo.FindProjectByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !caller.Projects().Admits(p) {
		return nil, projectNotFound(id)
	}
	return p, nil
}

// List returns a page of the projects in the caller's project scope, sorted
// by ID. It needs projects:read.
func (s *ProjectService) List(ctx context.Context, f ProjectFilter, req PageRequest) (Page[*Project], error) {
	caller, err := Authorize(ctx, ScopeProjectsRead)
	if err != nil {
		return Page[*Project]{}, err
	}
	f.Scope = caller.Projects()
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
