package domain

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"
)

// CommandService queues, cancels and reports commands, and streams their
// output. Running them is the Dispatcher's job. Every execute and cancel is
// recorded in the audit log in the transaction that makes it, and every
// refused attempt by an authenticated caller on its own.
type CommandService struct {
	commands CommandRepository
	projects ProjectRepository
	hub      Hub
	bcast    Broadcaster
	audit    *AuditService
	limits   CommandLimits
	tracer   CommandTracer
	now      func() time.Time
	// envSealer, if not nil, seals the env values of queued commands.
	envSealer SecretSealer
}

// NewCommandService returns a service that records every execute and cancel
// in audit's log (nil records nothing). bcast may be nil in a single process.
// Each queued command keeps tracer's trace context of the request that
// queued it; a nil tracer keeps none.
func NewCommandService(commands CommandRepository, projects ProjectRepository, hub Hub, bcast Broadcaster, audit *AuditService, limits CommandLimits, tracer CommandTracer) *CommandService {
	if tracer == nil {
		tracer = NopCommandTracer{}
	}
	return &CommandService{commands: commands, projects: projects, hub: hub, bcast: bcast, audit: audit, limits: limits, tracer: tracer, now: time.Now}
}

// SealEnvWith makes the service store the env values of the commands it
// queues sealed under sealer (SealedTextPrefix), for the dispatcher to open
// as each starts (DispatcherConfig.EnvSealer). Without it they are stored
// in clear until the command starts. Call it before the service is used.
func (s *CommandService) SealEnvWith(sealer SecretSealer) {
	s.envSealer = sealer
}

// Execute validates and queues a command and returns it QUEUED. The same
// ClientToken from the same key with the same command returns the existing
// command and queues nothing; with a different command (project, program,
// environment, working directory, priority or timeout) it is ECONFLICT. It
// needs commands:write; EINVALID for bad input, ENOTFOUND for an unknown
// project, ECONFLICT for a project that is not RUNNING, ERATELIMITED when
// the key has too many commands queued. The queued command and its audit
// entry are written in one transaction; a refused one is recorded on its
// own.
func (s *CommandService) Execute(ctx context.Context, in ExecuteCommand) (*Command, error) {
	entry := s.audit.entry(ctx, AuditCommandExecute, "")
	if entry != nil {
		entry.Details = map[string]string{"project": Clip(in.ProjectID)}
	}
	c, err := s.execute(ctx, in, entry)
	if err != nil {
		return nil, s.audit.refused(ctx, entry, err)
	}
	if entry != nil && entry.Seq == 0 {
		// A replay of a client token queued nothing: it is recorded on its
		// own, naming the command it returned.
		entry.Target, entry.Details = c.ID, map[string]string{"project": c.ProjectID, "replayOf": c.ID}
		if err := s.audit.repo.AppendAudit(ctx, entry); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (s *CommandService) execute(ctx context.Context, in ExecuteCommand, entry *AuditEntry) (*Command, error) {
	caller, err := Authorize(ctx, ScopeCommandsWrite)
	if err != nil {
		return nil, err
	}
	c, err := commandFrom(in, s.limits)
	if err != nil {
		return nil, err
	}
	if err := admitProject(ctx, s.projects, caller, c.ProjectID); err != nil {
		return nil, err
	}
	if c.ClientToken != "" {
		if prev, err := s.commands.FindCommandByClientToken(ctx, caller.KeyID(), c.ClientToken); err == nil {
			return s.replay(prev, c)
		} else if ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
	}
	p, err := s.projects.FindProjectByID(ctx, c.ProjectID)
	if err != nil {
		return nil, err
	}
	if p.Status != ProjectRunning {
		return nil, Errorf(ECONFLICT, "project %s is %s: commands run only in RUNNING projects", p.ID, p.Status)
	}
	if err := s.sessionFree(ctx, c); err != nil {
		return nil, err
	}
	if s.limits.MaxQueuedPerKey > 0 {
		n, err := s.commands.CountQueued(ctx, caller.KeyID())
		if err != nil {
			return nil, err
		}
		if n >= s.limits.MaxQueuedPerKey {
			return nil, Errorf(ERATELIMITED, "queue full: this key already has %d commands queued (limit %d); wait for some to start", n, s.limits.MaxQueuedPerKey)
		}
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	c.ID, c.KeyID, c.CreatedAt = NewID(now), caller.KeyID(), now
	tc := s.tracer.TraceContext(ctx)
	c.TraceParent, c.TraceState = tc.Parent, tc.State
	s.audit.executeEntry(entry, c)
	stored := c
	if s.envSealer != nil && len(c.Env) > 0 {
		stored = c.Clone()
		if stored.Env, err = sealEnv(s.envSealer, c.ID, c.Env); err != nil {
			return nil, err
		}
	}
	if err := s.commands.CreateCommand(ctx, stored, entry); err != nil {
		if ErrorCode(err) != ECONFLICT {
			return nil, err
		}
		if c.ClientToken != "" {
			// A concurrent request with the same token won the race.
			prev, ferr := s.commands.FindCommandByClientToken(ctx, caller.KeyID(), c.ClientToken)
			if ferr == nil {
				return s.replay(prev, c)
			} else if ErrorCode(ferr) != ENOTFOUND {
				return nil, ferr
			}
		}
		// Or a concurrent run of the same agent session was queued first:
		// say which, if it is still there.
		if serr := s.sessionFree(ctx, c); serr != nil {
			return nil, serr
		}
		return nil, err
	}
	s.publish(ctx, QueueTopic, Event{Kind: EventQueued, CommandID: c.ID})
	s.publishStatus(ctx, c)
	return c, nil
}

// sessionFree returns ECONFLICT, naming the run, if c resumes an agent
// session that a QUEUED or RUNNING command of its project resumes too. The
// store's unique index keeps it so under concurrency; this check names the
// run that holds the session.
func (s *CommandService) sessionFree(ctx context.Context, c *Command) error {
	if c.AgentSession == "" {
		return nil
	}
	for _, st := range []CommandStatus{CommandRunning, CommandQueued} {
		found, err := s.commands.FindCommands(ctx, CommandFilter{ProjectID: c.ProjectID, AgentSession: c.AgentSession, Status: st, Limit: 1})
		if err != nil {
			return err
		}
		if len(found) > 0 {
			return sessionBusy(c.ProjectID, c.AgentSession, found[0])
		}
	}
	return nil
}

// sessionBusy is the ECONFLICT of a run of session in project while run
// other is active.
func sessionBusy(project, session string, other *Command) error {
	return Errorf(ECONFLICT, "agent session %q of project %s is in use: agent run %s is %s; "+
		"wait for it to end (or cancel it) before resuming the session", Clip(session), project, other.ID, other.Status)
}

// replay returns prev, the command a client token was first used for, to
// a request with the same token that asks for c: the same command again (a
// retry), or ECONFLICT, naming prev, if c is another one. Returning prev
// then would tell the client its new command was queued when it was not.
func (s *CommandService) replay(prev, c *Command) (*Command, error) {
	env, err := openEnv(s.envSealer, prev)
	if err != nil {
		return nil, err
	}
	asked := prev.Clone()
	asked.Env = env
	if diff := differences(asked, c); len(diff) > 0 {
		return nil, Errorf(ECONFLICT, "clientToken %q was already used for command %s, which has another %s: "+
			"use a new clientToken for a new command", Clip(c.ClientToken), prev.ID, strings.Join(diff, ", "))
	}
	return prev, nil
}

// differences names what a request for command c asks for that differs
// from command prev.
func differences(prev, c *Command) []string {
	var diff []string
	for _, d := range []struct {
		name string
		same bool
	}{
		{"project", prev.ProjectID == c.ProjectID},
		{"type", prev.Type == c.Type},
		{"agent protocol", prev.AgentProtocol == c.AgentProtocol},
		{"agent session", prev.AgentSession == c.AgentSession},
		{"argv", slices.Equal(prev.Argv, c.Argv)},
		{"env", sameEnv(prev, c)},
		{"workdir", prev.Workdir == c.Workdir},
		{"priority", prev.Priority == c.Priority},
		{"timeout", prev.Timeout == c.Timeout},
	} {
		if !d.same {
			diff = append(diff, d.name)
		}
	}
	return diff
}

// sameEnv reports whether c asks for prev's environment. Once prev has
// started only the names are stored, so only the names are compared.
func sameEnv(prev, c *Command) bool {
	if prev.EnvCleared() {
		return slices.Equal(prev.EnvNames(), c.EnvNames())
	}
	return maps.Equal(prev.Env, c.Env)
}

// Cancel stops a command: a QUEUED one ends CANCELLED at once, a RUNNING one
// is stopped by the process that runs it (the process and its children are
// killed). It needs commands:write; ENOTFOUND for an unknown command,
// ECONFLICT for one that already ended. The change and its audit entry are
// written in one transaction.
func (s *CommandService) Cancel(ctx context.Context, id string) (*Command, error) {
	entry := s.audit.entry(ctx, AuditCommandCancel, Clip(id))
	c, err := s.cancel(ctx, id, entry)
	if err != nil {
		return nil, s.audit.refused(ctx, entry, err)
	}
	return c, nil
}

func (s *CommandService) cancel(ctx context.Context, id string, entry *AuditEntry) (*Command, error) {
	caller, err := Authorize(ctx, ScopeCommandsWrite)
	if err != nil {
		return nil, err
	}
	found, err := s.findCommand(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	reason := "cancelled by the operator"
	if caller.KeyID() != "" {
		reason = "cancelled by API key " + caller.KeyID()
	}
	if entry != nil {
		entry.Details = map[string]string{"reason": reason, "project": found.ProjectID}
	}
	c, err := s.commands.RequestCancel(ctx, id, reason, s.now().UTC(), entry)
	if err != nil {
		return nil, err
	}
	if c.Status == CommandCancelled {
		s.publishStatus(ctx, c)
	} else {
		s.publish(ctx, QueueTopic, Event{Kind: EventCancel, CommandID: c.ID, Command: c})
	}
	return c, nil
}

// Get returns a command. It needs commands:read; ENOTFOUND if there is none
// or its project is outside the caller's project scope.
func (s *CommandService) Get(ctx context.Context, id string) (*Command, error) {
	caller, err := Authorize(ctx, ScopeCommandsRead)
	if err != nil {
		return nil, err
	}
	return s.findCommand(ctx, caller, id)
}

// List returns a page of commands, newest first, optionally of one project
// and in one state, of the projects in the caller's project scope only. It
// needs commands:read.
func (s *CommandService) List(ctx context.Context, f CommandFilter, req PageRequest) (Page[*Command], error) {
	caller, err := Authorize(ctx, ScopeCommandsRead)
	if err != nil {
		return Page[*Command]{}, err
	}
	if f.Status != "" && !validCommandStatus(f.Status) {
		return Page[*Command]{}, Errorf(EINVALID, "status: unknown command status %q", Clip(string(f.Status)))
	}
	if f.ProjectIDs, err = scopeProjectIDs(ctx, s.projects, caller.Projects()); err != nil {
		return Page[*Command]{}, err
	}
	f.BeforeID, f.Limit = req.After, req.First+1
	cs, err := s.commands.FindCommands(ctx, f)
	if err != nil {
		return Page[*Command]{}, err
	}
	return pageOf(cs, req), nil
}

// ListForProjects returns the first page of commands of each project, newest
// first, in one store query (a dataloader batches Project.commands with it).
// It needs commands:read. A project outside the caller's project scope has
// an empty page.
func (s *CommandService) ListForProjects(ctx context.Context, projectIDs []string, status CommandStatus, first int) (map[string]Page[*Command], error) {
	caller, err := Authorize(ctx, ScopeCommandsRead)
	if err != nil {
		return nil, err
	}
	if status != "" && !validCommandStatus(status) {
		return nil, Errorf(EINVALID, "status: unknown command status %q", Clip(string(status)))
	}
	var admitted []string
	for _, id := range projectIDs {
		ok, err := scopeAdmits(ctx, s.projects, caller.Projects(), id)
		if err != nil {
			return nil, err
		}
		if ok {
			admitted = append(admitted, id)
		}
	}
	found, err := s.commands.FindCommandsForProjects(ctx, admitted, status, first+1)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Page[*Command], len(projectIDs))
	for _, id := range projectIDs {
		out[id] = pageOf(found[id], PageRequest{First: first})
	}
	return out, nil
}

// QueueInfo describes the queue and its limits.
type QueueInfo struct {
	QueueStats
	// Concurrency is this process's limit of running commands.
	Concurrency int
	// PerProject is the limit of running commands per project.
	PerProject int
	// MaxQueuedPerKey is the limit of queued commands per API key.
	MaxQueuedPerKey int
}

// Queue reports queue depth by priority, running commands and the limits. It
// needs commands:read.
func (s *CommandService) Queue(ctx context.Context) (QueueInfo, error) {
	if _, err := Authorize(ctx, ScopeCommandsRead); err != nil {
		return QueueInfo{}, err
	}
	st, err := s.commands.QueueStats(ctx)
	if err != nil {
		return QueueInfo{}, err
	}
	return QueueInfo{
		QueueStats: st, Concurrency: s.limits.Concurrency,
		PerProject: s.limits.PerProject, MaxQueuedPerKey: s.limits.MaxQueuedPerKey,
	}, nil
}

func (s *CommandService) publishStatus(ctx context.Context, c *Command) {
	publishStatus(ctx, s.hub, s.bcast, c)
}

// publish sends e to this process's hub and to the other processes.
func (s *CommandService) publish(ctx context.Context, topic string, e Event) {
	publish(ctx, s.hub, s.bcast, topic, e)
}

func publish(ctx context.Context, hub Hub, bcast Broadcaster, topic string, e Event) {
	hub.Publish(topic, e)
	if bcast != nil {
		// Best effort: other processes also poll and re-read storage.
		_ = bcast.Broadcast(ctx, topic, e)
	}
}

func commandNotFound(id string) error {
	return Errorf(ENOTFOUND, "command %q not found", Clip(id))
}

func validCommandStatus(s CommandStatus) bool { return slices.Contains(CommandStatuses, s) }
