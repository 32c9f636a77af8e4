package domain

import (
	"context"
	"strings"
	"time"
)

// OutputEvent is one item of a command's output stream: a chunk, or, last,
// the finished command.
type OutputEvent struct {
	Chunk *OutputChunk
	// Gap, sent just before a chunk (or the finished command), says that
	// the chunks between the last one sent and that one are not there to
	// be sent.
	Gap      *OutputGap
	Finished *Command
	// hold keeps Chunk's bytes from reuse until the receiver is done with
	// them (see TransientOutputAs).
	hold *Hold
}

// OutputGap is where a command's output stream skips chunks: those with
// seqs above AfterSeq and below NextSeq were never stored, because output
// passed the cap (the dropped middle of a truncated command, for a
// subscriber that was not following it live) or storage refused them
// (Command.LostBytes).
type OutputGap struct {
	AfterSeq, NextSeq int64
}

// Stream tuning: how many chunks one storage read returns, how large a
// subscriber's hub buffer is, and how often a quiet stream re-checks storage
// (a safety net for a missed cross-process signal).
const (
	streamReadBatch = 500
	streamBuffer    = 32
	streamRecheck   = 2 * time.Second
)

// Output streams a command's output after afterSeq: first what is stored,
// then live chunks, then the finished command — in Seq order, without gaps
// (other than the dropped middle of a truncated command) or duplicates,
// whether the command is queued, running or long finished, and whichever
// process runs it. The channel closes after the finished event, or when ctx
// ends. It needs commands:read; ENOTFOUND for an unknown command, EINVALID
// for a negative afterSeq or one past the end of a finished command.
func (s *CommandService) Output(ctx context.Context, id string, afterSeq int64) (<-chan OutputEvent, error) {
	return OutputAs(ctx, s, id, afterSeq, func(e OutputEvent) OutputEvent { return e })
}

// OutputAs is Output with each event mapped by f on the stream's own
// goroutine, so a transport that needs its own event type costs no extra
// goroutine per subscriber.
func OutputAs[T any](ctx context.Context, s *CommandService, id string, afterSeq int64, f func(OutputEvent) T) (<-chan T, error) {
	return outputAs(ctx, s, id, afterSeq, f, false)
}

// TransientOutputAs is OutputAs for a receiver that is done with each event,
// and with whatever f made of it, once it receives the next one, as
// gqlgen's executor is: it marshals each result before it asks for the
// next. A chunk's Data may then be overwritten by later output (its memory
// is recycled) and must not be kept, nor read after that receive.
//
// The stream knows the receiver has taken an event when the channel no
// longer buffers it, so it lets go of all but the last event taken. What
// is still buffered, or was taken last, when the stream ends is left to
// the garbage collector.
func TransientOutputAs[T any](ctx context.Context, s *CommandService, id string, afterSeq int64, f func(OutputEvent) T) (<-chan T, error) {
	return outputAs(ctx, s, id, afterSeq, f, true)
}

func outputAs[T any](ctx context.Context, s *CommandService, id string, afterSeq int64, f func(OutputEvent) T, transient bool) (<-chan T, error) {
	caller, err := Authorize(ctx, ScopeCommandsRead)
	if err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, commandNotFound(id)
	}
	if afterSeq < 0 {
		return nil, Errorf(EINVALID, "afterSeq: must not be negative, got %d", afterSeq)
	}
	// Subscribe before reading the command: a state read after subscribing
	// is either final already or its end arrives on the subscription, so
	// this one read serves both the checks and the stream.
	sub := s.hub.Subscribe(CommandTopic(id), streamBuffer)
	c, err := s.commands.FindCommandByID(ctx, id)
	if err == nil {
		err = s.admitCommand(ctx, caller, c)
	}
	if err != nil {
		sub.Close()
		return nil, err
	}
	if c.Status.Final() && afterSeq > c.LastSeq {
		sub.Close()
		return nil, Errorf(EINVALID, "afterSeq: %d is past the end of the output of command %s (its last seq is %d)", afterSeq, id, c.LastSeq)
	}
	out := make(chan T, 4)
	// The holds of the events sent and not yet known to be done with.
	var taken []*Hold
	st := &outputStream{s: s, id: id, last: afterSeq, transient: transient, send: func(ctx context.Context, e OutputEvent, dropped <-chan struct{}) bool {
		select {
		case out <- f(e):
		case <-ctx.Done():
			return false
		case <-dropped:
			return false
		}
		if transient {
			taken = append(taken, e.hold)
			// The receiver has taken all but len(out) of the events sent,
			// and is done with all of those but the last.
			done := len(taken) - len(out) - 1
			for _, h := range taken[:max(done, 0)] {
				h.Release()
			}
			taken = taken[max(done, 0):]
		}
		return true
	}}
	go func() {
		defer close(out)
		st.run(ctx, sub, c)
	}()
	return out, nil
}

// outputStream is one subscriber's replay-then-tail loop.
type outputStream struct {
	s    *CommandService
	id   string
	last int64 // highest seq sent, or skipped by a gap sent
	// transient: send releases the holds of events the receiver is done
	// with, so each chunk sent carries a reference of its event's hold.
	transient bool
	// send passes an event on. It returns false, not having sent it, when
	// ctx ends or dropped (nil for none) is closed first.
	send func(ctx context.Context, e OutputEvent, dropped <-chan struct{}) bool
	// pending is a copy of the chunk the stream was sending when the hub
	// dropped the subscriber, to be sent before anything else.
	pending *OutputChunk
}

// run follows sub, starting from c as read after sub was made.
func (st *outputStream) run(ctx context.Context, sub HubSubscription, c *Command) {
	for {
		done := st.follow(ctx, sub, c)
		sub.Close()
		if done || ctx.Err() != nil || !st.sendPending(ctx) {
			return
		}
		// The subscriber lagged: subscribe anew (before reading storage, so
		// nothing stored meanwhile falls in between) and catch up.
		sub, c = st.s.hub.Subscribe(CommandTopic(st.id), streamBuffer), nil
	}
}

// follow sends stored output, then tails sub. c is the command as read
// after sub was made, or nil to read it. It returns true when the stream is
// over (finished, ctx ended or storage failed) and false when the
// subscription dropped this subscriber.
func (st *outputStream) follow(ctx context.Context, sub HubSubscription, c *Command) bool {
	if !st.catchUp(ctx) {
		return true
	}
	if done, ok := st.finishIfFinal(ctx, c); done || !ok {
		return true
	}
	recheck := time.NewTicker(streamRecheck)
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return true
		case e, ok := <-sub.Events():
			if !ok {
				return false
			}
			switch e.Kind {
			case EventOutput:
				if !st.onOutput(ctx, sub, e) {
					return true
				}
				if st.pending != nil {
					return false // dropped while sending e
				}
			case EventStatus:
				if e.Command != nil && e.Command.Status.Final() {
					done, _ := st.finishIfFinal(ctx, e.Command)
					if done {
						return true
					}
				}
			case EventCancel, EventQueued, EventProject, EventKey:
			}
		case <-recheck.C:
			if !st.catchUp(ctx) {
				return true
			}
			if done, ok := st.finishIfFinal(ctx, nil); done || !ok {
				return true
			}
		}
	}
}

// onOutput sends the new chunks of e, an output event from sub, first
// filling any gap from storage. It returns false when the stream must end.
//
// If the hub drops the subscriber while the receiver has no room for the
// next chunk, onOutput lets go of e at once, leaving a copy of that chunk
// pending: a receiver that stopped reading would otherwise keep e, and the
// blocks its chunks are cut from, for as long as it stays. The rest of e is
// read from storage, with the events the hub discarded.
func (st *outputStream) onOutput(ctx context.Context, sub HubSubscription, e Event) bool {
	if len(e.Chunks) == 0 || e.Chunks[0].Seq > st.last+1 {
		if !st.catchUp(ctx) {
			return false
		}
	}
	for i := range e.Chunks {
		if c := &e.Chunks[i]; c.Seq > st.last {
			var hold *Hold
			if st.transient {
				hold = e.Hold
				hold.Retain()
			}
			if !st.sendChunk(ctx, c, hold, sub.Done()) {
				if ctx.Err() != nil {
					return false
				}
				pending := *c
				pending.Data = strings.Clone(c.Data)
				st.pending = &pending
				break
			}
		}
	}
	if st.transient {
		// This subscriber's reference, from the hub; its chunks sent hold
		// their own.
		e.Hold.Release()
	}
	return true
}

// sendChunk sends c (whose bytes hold keeps, if not nil), first a gap if
// seqs were skipped since the last chunk sent. It returns false, with hold
// released and c not sent, when ctx ends or dropped is closed first.
func (st *outputStream) sendChunk(ctx context.Context, c *OutputChunk, hold *Hold, dropped <-chan struct{}) bool {
	if c.Seq > st.last+1 {
		if !st.send(ctx, OutputEvent{Gap: &OutputGap{AfterSeq: st.last, NextSeq: c.Seq}}, dropped) {
			hold.Release()
			return false
		}
		st.last = c.Seq - 1
	}
	if !st.send(ctx, OutputEvent{Chunk: c, hold: hold}, dropped) {
		hold.Release()
		return false
	}
	st.last = c.Seq
	return true
}

// sendPending sends the chunk left pending when the hub dropped the
// subscriber, if there is one. It returns false when the stream must end.
func (st *outputStream) sendPending(ctx context.Context) bool {
	c := st.pending
	st.pending = nil
	return c == nil || st.sendChunk(ctx, c, nil, nil)
}

// catchUp sends every stored chunk after the last one sent. It reads them
// half a subscriber buffer at a time: a subscriber that stops reading
// holds the read it is being sent, and the chunks it was sent before,
// which are on their way to it, take up the other half.
func (st *outputStream) catchUp(ctx context.Context) bool {
	maxBytes := max(st.s.subscriberBuffer()/2, 1)
	for {
		chunks, err := st.s.commands.ReadOutput(ctx, st.id, st.last, streamReadBatch, maxBytes)
		if err != nil {
			streamFailed(ctx, err)
			return false
		}
		size := 0
		for i := range chunks {
			if !st.sendChunk(ctx, &chunks[i], nil, nil) {
				return false
			}
			size += len(chunks[i].Data)
		}
		// A read short of both of its limits found the end.
		if len(chunks) < streamReadBatch && size < maxBytes {
			return true
		}
	}
}

// subscriberBuffer is the configured CommandLimits.SubscriberBuffer, or
// the default.
func (s *CommandService) subscriberBuffer() int {
	if s.limits.SubscriberBuffer > 0 {
		return s.limits.SubscriberBuffer
	}
	return DefaultCommandLimits.SubscriberBuffer
}

// finishIfFinal ends the stream if the command has ended: it sends the rest
// of the stored output and then the finished command. c is the command as an
// event reported it, or nil to read it from storage. done reports that the
// stream is over; ok is false if it must end for another reason.
func (st *outputStream) finishIfFinal(ctx context.Context, c *Command) (done, ok bool) {
	if c == nil {
		var err error
		if c, err = st.s.commands.FindCommandByID(ctx, st.id); err != nil {
			streamFailed(ctx, err)
			return true, false
		}
	}
	if !c.Status.Final() {
		return false, true
	}
	// The final state is written after the last chunk is stored.
	if !st.catchUp(ctx) {
		return true, false
	}
	if c.LastSeq > st.last { // the last chunks were lost
		if !st.send(ctx, OutputEvent{Gap: &OutputGap{AfterSeq: st.last, NextSeq: c.LastSeq + 1}}, nil) {
			return true, false
		}
	}
	st.send(ctx, OutputEvent{Finished: c}, nil)
	return true, true
}

// Events streams status changes of a project's commands (queued, started,
// finished) until ctx ends. It needs commands:read; ENOTFOUND for an unknown
// project or one outside the caller's project scope.
func (s *CommandService) Events(ctx context.Context, projectID string) (<-chan *Command, error) {
	caller, err := Authorize(ctx, ScopeCommandsRead)
	if err != nil {
		return nil, err
	}
	if ValidateProjectID(projectID) != nil {
		return nil, projectNotFound(projectID)
	}
	if err := admitProject(ctx, s.projects, caller, projectID); err != nil {
		return nil, err
	}
	if _, err := s.projects.FindProjectByID(ctx, projectID); err != nil {
		return nil, err
	}
	out := make(chan *Command, 16)
	st := &statusStream{s: s, projectID: projectID, current: s.now(), seen: map[string]int{}, out: out}
	// Subscribed before returning, so a change made once the caller has
	// the stream is never missed.
	sub := s.hub.Subscribe(ProjectTopic(projectID), streamBuffer)
	go func() {
		defer close(out)
		handle := func(e Event) bool {
			if e.Kind != EventStatus || e.Command == nil {
				return true
			}
			st.current = later(st.current, lastChange(e.Command))
			return st.send(ctx, e.Command)
		}
		tail(ctx, s.hub, ProjectTopic(projectID), streamBuffer, sub, handle, func() bool { return st.catchUp(ctx) })
	}()
	return out, nil
}

// tail passes the events of sub, a subscription to topic, to handle until
// ctx ends or handle returns false. When the hub drops the subscriber for
// lagging, tail subscribes anew (before catching up, so that nothing
// published meanwhile falls in between) and calls catchUp, which sends what
// was missed from storage and returns false if the stream must end.
func tail(ctx context.Context, hub Hub, topic string, buffer int, sub HubSubscription, handle func(Event) bool, catchUp func() bool) {
	for {
		more := forward(ctx, sub, handle)
		sub.Close()
		if !more || ctx.Err() != nil {
			return
		}
		sub = hub.Subscribe(topic, buffer)
		if !catchUp() {
			sub.Close()
			return
		}
	}
}

// forward passes sub's events to handle until ctx ends or handle returns
// false (it returns false then), or until the hub drops the subscriber (it
// returns true).
func forward(ctx context.Context, sub HubSubscription, handle func(Event) bool) bool {
	for {
		select {
		case <-ctx.Done():
			return false
		case e, ok := <-sub.Events():
			if !ok {
				return true
			}
			if !handle(e) {
				return false
			}
		}
	}
}

// statusStream is one subscriber's stream of a project's status changes. A
// command's states only move forward: an event that arrives after a later
// state (QUEUED published after the command already started) is dropped.
type statusStream struct {
	s         *CommandService
	projectID string
	// current is a time by which the stream has missed no change: when it
	// began or last caught up, or the time of the latest change it was sent.
	// Any change it misses while the hub has dropped it is later.
	current time.Time
	seen    map[string]int // the latest state sent, by command
	out     chan<- *Command
}

// catchUpSkew is how far catch-up reads back before the stream's current
// time: changes are timed by the clock of the rdev process that made them.
const catchUpSkew = 30 * time.Second

// catchUp sends, after the hub dropped this subscriber, the current state of
// every command of the project that was queued, started or finished since
// the stream was last current, however many there are and however old the
// commands. The subscription was made anew before, so everything after this
// read arrives on it. It returns false when the stream must end.
func (st *statusStream) catchUp(ctx context.Context) bool {
	since := st.current.Add(-catchUpSkew)
	st.current = st.s.now()
	var changed []*Command
	for before := ""; ; {
		page, err := st.s.commands.FindCommands(ctx, CommandFilter{ProjectID: st.projectID, ChangedSince: since, BeforeID: before, Limit: MaxPageSize})
		if err != nil {
			streamFailed(ctx, err)
			return false
		}
		changed = append(changed, page...)
		if len(page) < MaxPageSize {
			break
		}
		before = page[len(page)-1].ID
	}
	for i := len(changed) - 1; i >= 0; i-- { // oldest first
		if !st.send(ctx, changed[i]) {
			return false
		}
	}
	return true
}

// lastChange is when c was last queued, started or finished.
func lastChange(c *Command) time.Time {
	t := c.CreatedAt
	if c.StartedAt != nil {
		t = later(t, *c.StartedAt)
	}
	if c.FinishedAt != nil {
		t = later(t, *c.FinishedAt)
	}
	return t
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// send passes c on unless an equal or later state of it was sent already.
func (st *statusStream) send(ctx context.Context, c *Command) bool {
	rank := statusRank(c.Status)
	if prev, ok := st.seen[c.ID]; ok && rank <= prev {
		return true
	}
	st.seen[c.ID] = rank
	select {
	case st.out <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

// statusRank orders states in a command's life: queued, running, final.
func statusRank(s CommandStatus) int {
	switch s {
	case CommandQueued:
		return 0
	case CommandRunning:
		return 1
	default:
		return 2
	}
}

// Relay publishes on this process's hub an event another process broadcast,
// first loading from storage what the broadcast left out.
func (s *CommandService) Relay(ctx context.Context, topic string, e Event) {
	if e.Kind == EventStatus || e.Kind == EventCancel {
		c, err := s.commands.FindCommandByID(ctx, e.CommandID)
		if err != nil {
			return
		}
		e.Command = c
	}
	s.hub.Publish(topic, e)
}
