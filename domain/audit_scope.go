package domain

import "context"

// AuditProjectDetail is the detail that names the project an audit entry is
// about; a caller limited to projects sees only entries with one in scope.
const AuditProjectDetail = "project"

// JudgeProjectsWith makes List judge the label selectors of a caller's
// project scope on the labels projects has now; without it, a caller
// limited by selectors sees no entry of a project it does not name. It
// returns s. Call it before s is used.
func (s *AuditService) JudgeProjectsWith(projects ProjectRepository) *AuditService {
	s.projects = projects
	return s
}

// auditKeep returns what keeps, for the caller's project scope, the entries
// it may see, or nil (everything) for an unrestricted caller. Each project
// is judged once per call.
func (s *AuditService) auditKeep(ctx context.Context, caller *Caller) func(*AuditEntry) (bool, error) {
	scope := caller.Projects()
	if scope.Unrestricted() {
		return nil
	}
	judged := map[string]bool{}
	return func(e *AuditEntry) (bool, error) {
		id := e.Details[AuditProjectDetail]
		if id == "" {
			return false, nil
		}
		if ok, seen := judged[id]; seen {
			return ok, nil
		}
		ok, err := scopeAdmits(ctx, s.projects, scope, id)
		if err != nil {
			return false, err
		}
		judged[id] = ok
		return ok, nil
	}
}
