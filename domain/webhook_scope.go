package domain

import (
	"context"
	"slices"
)

// A webhook endpoint has the project scope of the key that created it. It
// is sent only the command events of projects in that scope, judged when
// the event happens, and a project-scoped endpoint cannot subscribe to
// events that are about no project (key.revoked). A key sees and manages
// only the endpoints whose scope lies within its own (ProjectScope.Within);
// the others are ENOTFOUND to it, so that nobody reads, through an
// endpoint's deliveries, events of projects outside its scope.

// webhookVisible reports whether the caller may see and manage w.
func webhookVisible(caller *Caller, w *Webhook) bool {
	return w.Projects.Within(caller.Projects()) == nil
}

// findWebhook returns endpoint id if the caller may see it, ENOTFOUND
// otherwise.
func (s *WebhookService) findWebhook(ctx context.Context, caller *Caller, id string) (*Webhook, error) {
	if !validID(id) {
		return nil, webhookNotFound(id)
	}
	w, err := s.repo.FindWebhookByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !webhookVisible(caller, w) {
		return nil, webhookNotFound(id)
	}
	return w, nil
}

// validateScopedEvents returns EINVALID if an endpoint limited to projects
// subscribes to an event that is about no project.
func validateScopedEvents(scope ProjectScope, events []string) error {
	if !scope.Unrestricted() && slices.Contains(events, EventKeyRevoked) {
		return Errorf(EINVALID, "events: %s is about no project, and this endpoint is limited to %s (the project scope of the key that created it)", EventKeyRevoked, scope)
	}
	return nil
}

// admitsEvent reports whether w's project scope admits e: an event of a
// project in its scope, or any event for an unrestricted endpoint. project
// is e's project as it is now, nil if it is gone or e has none.
func (w *Webhook) admitsEvent(e WebhookEvent, project *Project) bool {
	switch {
	case w.Projects.Unrestricted():
		return true
	case e.ProjectID == "":
		return false
	case project != nil:
		return w.Projects.Admits(project)
	}
	return w.Projects.AdmitsName(e.ProjectID)
}

// ProjectOfEvent returns e's project as projects has it now, for
// WebhookDeliveries: only when one of ws is limited by a label selector
// (names and unrestricted endpoints need no lookup). It returns nil when
// there is no need, no project, or no repository, and when the lookup
// fails: a selector then admits nothing, so an endpoint misses the event
// rather than receiving one it may not.
func ProjectOfEvent(ctx context.Context, projects ProjectRepository, e WebhookEvent, ws []*Webhook) *Project {
	if e.ProjectID == "" || projects == nil ||
		!slices.ContainsFunc(ws, func(w *Webhook) bool { return len(w.Projects.Selectors) > 0 }) {
		return nil
	}
	p, err := projects.FindProjectByID(ctx, e.ProjectID)
	if err != nil {
		return nil
	}
	return p
}
