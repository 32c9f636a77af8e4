package domain

import (
	"context"
	"io"
	"strings"
)

// ProjectNetwork is what network a project's commands may reach.
type ProjectNetwork string

// The network policies.
const (
	// NetworkAny leaves the network as it is: a command reaches what rdev's
	// host reaches, rdev itself and its database included.
	NetworkAny ProjectNetwork = "ANY"
	// NetworkLoopback gives each command a network of its own with only a
	// loopback interface: it reaches servers it started itself on
	// 127.0.0.1, neither the host's loopback services nor any other host.
	NetworkLoopback ProjectNetwork = "LOOPBACK"
	// NetworkNone gives each command a network of its own with no
	// interface up: no address at all, not even 127.0.0.1.
	NetworkNone ProjectNetwork = "NONE"
)

// ProjectNetworks lists every network policy, from the most open.
var ProjectNetworks = []ProjectNetwork{NetworkAny, NetworkLoopback, NetworkNone}

// ParseProjectNetwork returns the policy s names, in either case ("any",
// "LOOPBACK", …), and EINVALID for anything else.
func ParseProjectNetwork(s string) (ProjectNetwork, error) {
	n := ProjectNetwork(strings.ToUpper(s))
	if !n.Valid() {
		return "", Errorf(EINVALID, "network: %q is not ANY, LOOPBACK or NONE", Clip(s))
	}
	return n, nil
}

// Valid reports whether n is one of ProjectNetworks.
func (n ProjectNetwork) Valid() bool {
	return n == NetworkAny || n == NetworkLoopback || n == NetworkNone
}

// AuditProjectNetwork is the action of a change of a project's network
// policy; its details name the project and the policy set ("DEFAULT" for a
// reset).
const AuditProjectNetwork = "project.network"

// ProjectNetworkRepository stores the network policies an admin set for
// projects, away from anything a command can write.
type ProjectNetworkRepository interface {
	// SetProjectNetwork makes n the network policy of project projectID,
	// or removes the project's own policy when n is "", and appends audit
	// unless it is nil, in one transaction.
	SetProjectNetwork(ctx context.Context, projectID string, n ProjectNetwork, audit *AuditEntry) error
	// FindProjectNetworks returns the policies set for those of the
	// projects ids that have one.
	FindProjectNetworks(ctx context.Context, ids []string) (map[string]ProjectNetwork, error)
}

// ProjectNetworkService keeps each project's network policy: the one an
// admin set for it, or else the server's default. Setting one needs the
// admin scope and a project in the caller's project scope; reading it
// needs projects:read.
type ProjectNetworkService struct {
	repo     ProjectNetworkRepository
	projects ProjectRepository
	audit    *AuditService
	def      ProjectNetwork
	enforced bool
}

// NewProjectNetworkService returns a service over repo whose projects
// without a policy of their own get def. enforced says whether the
// executor holds policies other than NetworkAny; without it, def must be
// NetworkAny and setting another policy is EINVALID. Changes are recorded
// in audit's log (nil records nothing).
func NewProjectNetworkService(repo ProjectNetworkRepository, projects ProjectRepository, audit *AuditService, def ProjectNetwork, enforced bool) *ProjectNetworkService {
	if def == "" {
		def = NetworkAny
	}
	return &ProjectNetworkService{repo: repo, projects: projects, audit: audit, def: def, enforced: enforced}
}

// Set makes n the network policy of project projectID, or, when n is "",
// gives it the server's default again, and returns the policy now in
// force. It needs the admin scope; it returns ENOTFOUND for a project that
// does not exist or is out of the caller's scope, and EINVALID for an
// unknown policy or one the executor cannot hold.
func (s *ProjectNetworkService) Set(ctx context.Context, projectID string, n ProjectNetwork) (ProjectNetwork, error) {
	entry := s.audit.entry(ctx, AuditProjectNetwork, Clip(projectID))
	if entry != nil {
		set := string(n)
		if n == "" {
			set = "DEFAULT"
		}
		entry.Details = map[string]string{AuditProjectDetail: Clip(projectID), "network": Clip(set)}
	}
	if err := s.set(ctx, projectID, n, entry); err != nil {
		return "", s.audit.refused(ctx, entry, err)
	}
	if n == "" {
		return s.def, nil
	}
	return n, nil
}

func (s *ProjectNetworkService) set(ctx context.Context, projectID string, n ProjectNetwork, entry *AuditEntry) error {
	caller, err := Authorize(ctx, ScopeAdmin)
	if err != nil {
		return err
	}
	switch {
	case n != "" && !n.Valid():
		return Errorf(EINVALID, "network: %q is not ANY, LOOPBACK or NONE", Clip(string(n)))
	case n != "" && n != NetworkAny && !s.enforced:
		return Errorf(EINVALID, "network: this server's executor does not hold per-project network policies; on Kubernetes, restrict a project's network with a NetworkPolicy")
	}
	if ValidateProjectID(projectID) != nil {
		return projectNotFound(projectID)
	}
	if err := admitProject(ctx, s.projects, caller, projectID); err != nil {
		return err
	}
	if _, err := s.projects.FindProjectByID(ctx, projectID); err != nil {
		return err
	}
	return s.repo.SetProjectNetwork(ctx, projectID, n, entry)
}

// Of returns the network policies in force for projects ids, which the
// caller has been given already, in one read. It needs projects:read.
func (s *ProjectNetworkService) Of(ctx context.Context, ids []string) (map[string]ProjectNetwork, error) {
	if _, err := Authorize(ctx, ScopeProjectsRead); err != nil {
		return nil, err
	}
	set, err := s.repo.FindProjectNetworks(ctx, ids)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if _, ok := set[id]; !ok {
			set[id] = s.def
		}
	}
	return set, nil
}

// effective returns the policy of project id: its own, or the default.
func (s *ProjectNetworkService) effective(ctx context.Context, id string) (ProjectNetwork, error) {
	set, err := s.repo.FindProjectNetworks(ctx, []string{id})
	if err != nil {
		return "", err
	}
	if n, ok := set[id]; ok {
		return n, nil
	}
	return s.def, nil
}

// Executor returns ex with each command given its project's network policy
// (ExecRequest.Network). When the policy cannot be read, the command is
// not run: it never runs with more network than its project may have.
func (s *ProjectNetworkService) Executor(ex Executor) Executor {
	return networkExecutor{ex: ex, s: s}
}

// networkExecutor is the Executor ProjectNetworkService.Executor returns.
type networkExecutor struct {
	ex Executor
	s  *ProjectNetworkService
}

// Exec runs req with its project's network policy, or not at all if that
// cannot be read.
func (e networkExecutor) Exec(ctx context.Context, req ExecRequest, stdout, stderr io.Writer) (ExecResult, error) {
	if req.Project != nil {
		n, err := e.s.effective(ctx, req.Project.ID)
		if err != nil {
			return ExecResult{}, Errorf(ErrorCode(err), "the network policy of project %s cannot be read, so the command was not run: %s", req.Project.ID, ErrorMessage(err))
		}
		req.Network = n
	}
	return e.ex.Exec(ctx, req, stdout, stderr)
}
