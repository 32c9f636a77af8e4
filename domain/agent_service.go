package domain

import (
	"context"
)

// AgentService starts agent runs and streams their typed events. An agent
// run is a command whose argv an AgentProtocol built and which stores that
// protocol's name (Command.AgentProtocol): queue, limits, cancel, audit,
// webhooks and output are the command's, through CommandService. Its events
// are derived from the command's stored standard output, so they can be
// replayed from any seq in any process.
type AgentService struct {
	commands  *CommandService
	protocols *AgentProtocols
	// fallback is the protocol of runs that name none.
	fallback string
	// runs, if not nil, keeps the summaries of ended runs.
	runs AgentRunRepository
	// budgets limit what runs spend a day.
	budgets AgentBudgets
}

// NewAgentService returns a service that runs agents of protocols through
// commands; a run that names no protocol uses fallback.
func NewAgentService(commands *CommandService, protocols *AgentProtocols, fallback string) *AgentService {
	return &AgentService{commands: commands, protocols: protocols, fallback: fallback}
}

// RunAgent is the input of AgentService.Run.
type RunAgent struct {
	ProjectID string
	// Protocol names the agent's AgentProtocol; "" for the service's
	// default.
	Protocol string
	// Request is what the agent is asked to do.
	Request AgentRequest
	// Env, Priority, TimeoutSeconds and ClientToken are the command's, as
	// in ExecuteCommand.
	Env            []EnvVar
	Priority       Priority
	TimeoutSeconds *int
	ClientToken    string
}

// AgentRun is an agent run: its command, and what its output has said so
// far of its start and end.
type AgentRun struct {
	Command *Command
	// Started is the run's AgentStarted event; nil until the agent started
	// (or if its output lost it).
	Started *AgentStarted
	// Finished is the agent's own summary of its end (status, result, cost
	// and tokens); nil until it printed one, and for ever for an agent
	// that died without. FinishedAt is where in the output it came.
	Finished   *AgentFinished
	FinishedAt AgentEventItem
}

// SessionID returns the agent's session, which a later run can resume: the
// one it reported at its start or its end; "" before it started.
func (r *AgentRun) SessionID() string {
	switch {
	case r.Started != nil && r.Started.SessionID != "":
		return r.Started.SessionID
	case r.Finished != nil:
		return r.Finished.SessionID
	}
	return ""
}

// AgentEventItem is one item of an agent run's event stream: an event, or,
// last, the run's command as it ended.
type AgentEventItem struct {
	// Seq is the seq of the output chunk that completed the event's line
	// (for End, the command's last seq); Index is the event's place among
	// the events of that chunk, from 0. (Seq, Index) is the same whenever
	// the output is read again.
	Seq   int64
	Index int
	Event AgentEvent
	// End, set on the last item only, is the command as it ended.
	End *Command
}

// Run validates the request with the protocol's rules, and queues the
// agent's command as CommandService.Execute does (same queue, limits,
// audit, idempotency by ClientToken). It needs commands:write; EINVALID for
// bad input or an unknown protocol, and the codes of Execute. A request
// refused before it reaches Execute is recorded in the audit log as a
// refused command.execute, as Execute records its own refusals.
func (s *AgentService) Run(ctx context.Context, in RunAgent) (*AgentRun, error) {
	cost, err := s.capCost(ctx, in)
	if err != nil {
		return nil, s.commands.audit.Refused(ctx, AuditCommandExecute, "", err)
	}
	in.Request.MaxCostUSD = cost
	cmd, err := s.command(ctx, in)
	if err != nil {
		return nil, s.commands.audit.Refused(ctx, AuditCommandExecute, "", err)
	}
	c, err := s.commands.Execute(ctx, cmd)
	if err != nil {
		return nil, err
	}
	return s.summarize(ctx, c, false)
}

// command returns the command of an agent run of in, for a caller with
// commands:write.
func (s *AgentService) command(ctx context.Context, in RunAgent) (ExecuteCommand, error) {
	if _, err := Authorize(ctx, ScopeCommandsWrite); err != nil {
		return ExecuteCommand{}, err
	}
	name := in.Protocol
	if name == "" {
		name = s.fallback
	}
	p, err := s.protocols.Lookup(name)
	if err != nil {
		return ExecuteCommand{}, err
	}
	argv, err := p.Argv(in.Request)
	if err != nil {
		return ExecuteCommand{}, err
	}
	typ := CommandExec
	if name == ClaudeCodeProtocol {
		typ = CommandClaude
	}
	return ExecuteCommand{
		ProjectID: in.ProjectID, Type: typ, Argv: argv, Env: in.Env, Priority: in.Priority,
		TimeoutSeconds: in.TimeoutSeconds, ClientToken: in.ClientToken, agentProtocol: name,
		agentSession: in.Request.SessionID,
	}, nil
}

// Get returns an agent run with what its stored output says of its start
// and end; the end comes from its stored summary when it has one. It needs commands:read; ENOTFOUND if there is no such run (a
// command that is not an agent run is none) or its project is outside the
// caller's project scope.
func (s *AgentService) Get(ctx context.Context, id string) (*AgentRun, error) {
	c, err := s.find(ctx, id)
	if err != nil {
		return nil, err
	}
	if sum := s.storedSummary(ctx, c); sum != nil {
		run, err := s.summarize(ctx, c, true)
		if err != nil {
			return nil, err
		}
		run.Finished = &sum.Finished
		run.FinishedAt = AgentEventItem{Seq: sum.Seq, Index: sum.Index, Event: run.Finished}
		return run, nil
	}
	return s.summarize(ctx, c, false)
}

// find returns the command of agent run id, for a caller with commands:read.
func (s *AgentService) find(ctx context.Context, id string) (*Command, error) {
	c, err := s.commands.Get(ctx, id)
	if err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return nil, agentRunNotFound(id)
		}
		return nil, err
	}
	if c.AgentProtocol == "" {
		return nil, agentRunNotFound(id)
	}
	return c, nil
}

func agentRunNotFound(id string) error {
	return Errorf(ENOTFOUND, "agent run %q not found", Clip(id))
}

// summarize reads c's stored standard output for its first AgentStarted
// and last AgentFinished; with startOnly, it stops at the AgentStarted. A
// run of a protocol this process does not know has neither.
func (s *AgentService) summarize(ctx context.Context, c *Command, startOnly bool) (*AgentRun, error) {
	run := &AgentRun{Command: c}
	p, err := s.protocols.Lookup(c.AgentProtocol)
	if err != nil || (c.LastSeq == 0 && c.Status == CommandQueued) {
		return run, nil //nolint:nilerr // an unknown protocol has no events to read
	}
	st := &agentStream{parser: NewAgentParser(p, 0), emit: func(_ context.Context, it AgentEventItem) bool {
		switch e := it.Event.(type) {
		case *AgentStarted:
			if run.Started == nil {
				run.Started = e
			}
			return !startOnly
		case *AgentFinished:
			run.Finished, run.FinishedAt = e, it
		}
		return true
	}}
	batch := s.commands.subscriberBuffer() / 2
	for after := int64(0); ; {
		chunks, err := s.commands.commands.ReadOutput(ctx, c.ID, after, streamReadBatch, batch)
		if err != nil {
			return nil, err
		}
		if len(chunks) == 0 {
			break
		}
		for i := range chunks {
			if !st.take(ctx, OutputEvent{Chunk: &chunks[i]}) {
				return run, nil
			}
		}
		after = chunks[len(chunks)-1].Seq
	}
	st.send(ctx, st.parser.Close())
	return run, nil
}

// Events streams the typed events of agent run id whose chunks have a seq
// above afterSeq: those derived from stored output first, then live ones,
// then one item with End — in seq order, whether the run is queued,
// running or long finished, whichever process runs it. Its standard output
// is read from its start, so a line that began before afterSeq is whole;
// standard error is left to the command's output. The channel closes after
// the End item, or when ctx ends. It needs commands:read; ENOTFOUND for an
// unknown run, EINVALID for a negative afterSeq or one past the end of a
// finished run.
func (s *AgentService) Events(ctx context.Context, id string, afterSeq int64) (<-chan AgentEventItem, error) {
	return AgentEventsAs(ctx, s, id, afterSeq, func(it AgentEventItem) AgentEventItem { return it })
}

// AgentEventsAs is Events with each item mapped by f on the stream's own
// goroutine, so a transport that needs its own event type costs no extra
// goroutine per subscriber.
func AgentEventsAs[T any](ctx context.Context, s *AgentService, id string, afterSeq int64, f func(AgentEventItem) T) (<-chan T, error) {
	c, err := s.find(ctx, id)
	if err != nil {
		return nil, err
	}
	if afterSeq < 0 {
		return nil, Errorf(EINVALID, "afterSeq: must not be negative, got %d", afterSeq)
	}
	if c.Status.Final() && afterSeq > c.LastSeq {
		return nil, Errorf(EINVALID, "afterSeq: %d is past the end of the output of agent run %s (its last seq is %d)", afterSeq, id, c.LastSeq)
	}
	p, err := s.protocols.Lookup(c.AgentProtocol)
	if err != nil {
		return nil, Errorf(EINVALID, "agent run %s: %v", id, err)
	}
	output, err := s.commands.Output(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	out := make(chan T, 4)
	go func() {
		defer close(out)
		st := &agentStream{parser: NewAgentParser(p, 0), after: afterSeq, emit: func(ctx context.Context, it AgentEventItem) bool {
			select {
			case out <- f(it):
				return true
			case <-ctx.Done():
				return false
			}
		}}
		for e := range output {
			if !st.take(ctx, e) {
				return
			}
		}
	}()
	return out, nil
}

// agentStream turns one subscriber's output events into agent events.
type agentStream struct {
	parser *AgentParser
	// after: items of chunks up to this seq are not sent.
	after int64
	// seq and index are where the next event comes from.
	seq   int64
	index int
	// emit passes an item on; it returns false when ctx ended first.
	emit func(ctx context.Context, it AgentEventItem) bool
}

// take handles one output event; it returns false when the stream is over
// (the end was sent, or ctx ended).
func (st *agentStream) take(ctx context.Context, e OutputEvent) bool {
	switch {
	case e.Gap != nil:
		// Output is missing: a line cut by the gap is not joined to the
		// next one.
		return st.send(ctx, st.parser.Close())
	case e.Chunk != nil:
		if e.Chunk.Stream != Stdout {
			return true
		}
		st.seq, st.index = e.Chunk.Seq, 0
		return st.send(ctx, st.parser.Parse([]byte(e.Chunk.Data)))
	case e.Finished != nil:
		if !st.send(ctx, st.parser.Close()) {
			return false
		}
		st.emit(ctx, AgentEventItem{Seq: e.Finished.LastSeq, End: e.Finished})
		return false
	}
	return true
}

func (st *agentStream) send(ctx context.Context, events []AgentEvent) bool {
	for _, ev := range events {
		item := AgentEventItem{Seq: st.seq, Index: st.index, Event: ev}
		st.index++
		if item.Seq <= st.after {
			continue
		}
		if !st.emit(ctx, item) {
			return false
		}
	}
	return true
}
