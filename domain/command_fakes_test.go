package domain

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// commandRepo is an in-memory CommandRepository that honours every doc
// comment of the port. It also checks the ordering rules the dispatcher and
// recorder promise: it records chunks stored after their command's final
// state and seqs stored twice.
type commandRepo struct {
	mu      sync.Mutex
	audit   *auditLog // entries are appended with the change, or neither is
	cmds    map[string]*Command
	order   map[string]int // insertion order, the FIFO tie-break
	created int
	output  map[string][]OutputChunk // by command, in Seq order

	// claims counts ClaimCommands calls.
	claims int
	// readBytes lists the bytes of output each ReadOutput call returned.
	readBytes []int
	// lateChunks are chunks stored after their command reached a final
	// state; dupSeqs are seqs stored twice. Both must stay empty.
	lateChunks []OutputChunk
	dupSeqs    []string
	// storedAtFinish is the highest stored seq when FinishCommand ran.
	storedAtFinish map[string]int64

	// appendHook, when set, runs before AppendOutput stores anything,
	// outside the lock: it can block, slow down, or fail the write.
	appendHook func(chunks []OutputChunk) error
	// finishHook, when set, runs before FinishCommand does anything,
	// outside the lock: it can block or fail the write.
	finishHook func(id string) error
	// beforeCreate and afterCreate, when set, run before and after
	// CreateCommand stores a command, outside the lock.
	beforeCreate, afterCreate func(c *Command)
	// claimHook, when set, runs at the start of ClaimCommands, outside the
	// lock: it can block the dispatcher's loop.
	claimHook func()
	// claimLost makes that many claims that took commands fail as their
	// reply would if lost on the way.
	claimLost int
	// createErr, findErr, countErr, claimErr, renewErr and readErr make
	// those calls fail.
	createErr, findErr, countErr, claimErr, renewErr, readErr error
}

var _ CommandRepository = (*commandRepo)(nil)

func newCommandRepo() *commandRepo {
	return &commandRepo{
		cmds: map[string]*Command{}, order: map[string]int{},
		output: map[string][]OutputChunk{}, storedAtFinish: map[string]int64{},
		audit: newAuditLog(),
	}
}

// set runs f with the repo locked, to change its switches.
func (r *commandRepo) set(f func(r *commandRepo)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *commandRepo) CreateCommand(_ context.Context, c *Command, audit *AuditEntry) error {
	r.mu.Lock()
	hook := r.beforeCreate
	r.mu.Unlock()
	if hook != nil {
		hook(c)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.createErr != nil {
		return r.createErr
	}
	if _, ok := r.cmds[c.ID]; ok {
		return Errorf(ECONFLICT, "command %q already exists", c.ID)
	}
	if c.ClientToken != "" {
		for _, o := range r.cmds {
			if o.KeyID == c.KeyID && o.ClientToken == c.ClientToken {
				return Errorf(ECONFLICT, "the key already has command %s with client token %q", o.ID, c.ClientToken)
			}
		}
	}
	if c.AgentSession != "" {
		for _, o := range r.cmds {
			if o.ProjectID == c.ProjectID && o.AgentSession == c.AgentSession && !o.Status.Final() {
				return Errorf(ECONFLICT, "agent session %q of project %s already has active run %s", c.AgentSession, c.ProjectID, o.ID)
			}
		}
	}
	if err := r.audit.add(audit); err != nil {
		return err
	}
	r.created++
	r.order[c.ID] = r.created
	r.cmds[c.ID] = c.Clone()
	if after := r.afterCreate; after != nil {
		r.mu.Unlock()
		after(c.Clone())
		r.mu.Lock()
	}
	return nil
}

func (r *commandRepo) FindCommandByID(_ context.Context, id string) (*Command, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.findErr != nil {
		return nil, r.findErr
	}
	c, ok := r.cmds[id]
	if !ok {
		return nil, commandNotFound(id)
	}
	return c.Clone(), nil
}

func (r *commandRepo) FindCommandByClientToken(_ context.Context, keyID, token string) (*Command, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.findErr != nil {
		return nil, r.findErr
	}
	if token != "" {
		for _, c := range r.cmds {
			if c.KeyID == keyID && c.ClientToken == token {
				return c.Clone(), nil
			}
		}
	}
	return nil, Errorf(ENOTFOUND, "no command with client token %q", token)
}

// newestFirst returns the commands passing keep, newest (highest ID) first.
func (r *commandRepo) newestFirst(keep func(c *Command) bool) []*Command {
	var out []*Command
	for _, c := range r.cmds {
		if keep(c) {
			out = append(out, c.Clone())
		}
	}
	slices.SortFunc(out, func(a, b *Command) int { return strings.Compare(b.ID, a.ID) })
	return out
}

func (r *commandRepo) FindCommands(_ context.Context, f CommandFilter) ([]*Command, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.findErr != nil {
		return nil, r.findErr
	}
	out := r.newestFirst(func(c *Command) bool {
		return (f.ProjectID == "" || c.ProjectID == f.ProjectID) &&
			(f.ProjectIDs == nil || slices.Contains(f.ProjectIDs, c.ProjectID)) &&
			(f.Status == "" || c.Status == f.Status) &&
			(f.AgentSession == "" || c.AgentSession == f.AgentSession) &&
			(f.BeforeID == "" || c.ID < f.BeforeID) &&
			(f.ChangedSince.IsZero() || changedSince(c, f.ChangedSince))
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// changedSince reports whether c was queued, started or finished at or
// after t.
func changedSince(c *Command, t time.Time) bool {
	return !c.CreatedAt.Before(t) || (c.StartedAt != nil && !c.StartedAt.Before(t)) || (c.FinishedAt != nil && !c.FinishedAt.Before(t))
}

func (r *commandRepo) FindCommandsForProjects(_ context.Context, projectIDs []string, status CommandStatus, limit int) (map[string][]*Command, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.findErr != nil {
		return nil, r.findErr
	}
	out := map[string][]*Command{}
	for _, p := range projectIDs {
		cs := r.newestFirst(func(c *Command) bool {
			return c.ProjectID == p && (status == "" || c.Status == status)
		})
		if limit > 0 && len(cs) > limit {
			cs = cs[:limit]
		}
		if len(cs) > 0 {
			out[p] = cs
		}
	}
	return out, nil
}

func (r *commandRepo) CountQueued(_ context.Context, keyID string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.countErr != nil {
		return 0, r.countErr
	}
	n := 0
	for _, c := range r.cmds {
		if c.KeyID == keyID && c.Status == CommandQueued {
			n++
		}
	}
	return n, nil
}

func (r *commandRepo) QueueStats(_ context.Context) (QueueStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := QueueStats{Queued: map[Priority]int{}}
	for _, c := range r.cmds {
		switch c.Status {
		case CommandQueued:
			st.Queued[c.Priority]++
		case CommandRunning:
			st.Running++
		default:
		}
	}
	return st, nil
}

// ClaimCommands claims in priority order, FIFO (creation order) within a
// priority, skipping projects that already run PerProject commands.
func (r *commandRepo) ClaimCommands(_ context.Context, req ClaimRequest) (out []*Command, err error) {
	r.mu.Lock()
	hook := r.claimHook
	r.mu.Unlock()
	if hook != nil {
		hook()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.claims++
	if req.Owner == "" {
		return nil, Errorf(EINVALID, "claim: the owner is empty")
	}
	if r.claimErr != nil {
		return nil, r.claimErr
	}
	defer func() {
		// The claim is made, and its reply lost.
		if r.claimLost > 0 && len(out) > 0 {
			r.claimLost--
			out, err = nil, errors.New("connection reset by peer")
		}
	}()
	running := map[string]int{}
	var queued []*Command
	for _, c := range r.cmds {
		switch c.Status {
		case CommandRunning:
			running[c.ProjectID]++
		case CommandQueued:
			queued = append(queued, c)
		default:
		}
	}
	slices.SortFunc(queued, func(a, b *Command) int {
		return cmp.Or(cmp.Compare(b.Priority, a.Priority), cmp.Compare(r.order[a.ID], r.order[b.ID]))
	})
	for _, c := range queued {
		if len(out) >= req.Max {
			break
		}
		if req.PerProject > 0 && running[c.ProjectID] >= req.PerProject {
			continue
		}
		running[c.ProjectID]++
		c.Status, c.Owner = CommandRunning, req.Owner
		c.LeaseExpiresAt, c.StartedAt = new(req.LeaseUntil), new(req.Now)
		c.LeaseEpoch++
		out = append(out, c.Clone())
		c.ClearEnv()
	}
	return out, nil
}

func (r *commandRepo) RenewLeases(_ context.Context, owner string, ids []string, until time.Time) (LeaseRenewal, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.renewErr != nil {
		return LeaseRenewal{}, r.renewErr
	}
	var out LeaseRenewal
	for _, id := range ids {
		c, ok := r.cmds[id]
		if !ok || c.Status != CommandRunning || c.Owner != owner {
			out.Lost = append(out.Lost, id)
			continue
		}
		c.LeaseExpiresAt = new(until)
		if c.CancelRequested {
			out.Cancel = append(out.Cancel, id)
		}
	}
	slices.Sort(out.Cancel)
	slices.Sort(out.Lost)
	return out, nil
}

// held reports whether lease holds its command. The caller holds r.mu.
func (r *commandRepo) held(lease Lease) bool {
	c, ok := r.cmds[lease.CommandID]
	return ok && c.Status == CommandRunning && c.Owner == lease.Owner && c.LeaseEpoch == lease.Epoch
}

// leaseExpiredReason is the Reason the fake gives interrupted commands.
const leaseExpiredReason = "lease expired: the process running it stopped"

func (r *commandRepo) ExpireLeases(_ context.Context, now time.Time, audit func(*Command) *AuditEntry) ([]*Command, error) {
	return r.interrupt(now, leaseExpiredReason, audit, func(c *Command) bool {
		return c.LeaseExpiresAt != nil && c.LeaseExpiresAt.Before(now)
	}), nil
}

func (r *commandRepo) InterruptHeldBy(_ context.Context, owners []string, now time.Time, audit func(*Command) *AuditEntry) ([]*Command, error) {
	return r.interrupt(now, takenOverReason, audit, func(c *Command) bool { return slices.Contains(owners, c.Owner) }), nil
}

func (r *commandRepo) ReleaseUnstarted(_ context.Context, owner string, started []string, now time.Time) ([]*Command, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Command
	for _, c := range r.cmds {
		if c.Status != CommandRunning || c.Owner != owner || slices.Contains(started, c.ID) {
			continue
		}
		c.Owner, c.LeaseExpiresAt, c.StartedAt = "", nil, nil
		switch {
		case c.CancelRequested:
			c.Status, c.FinishedAt = CommandCancelled, new(now)
		case len(c.Env) > 0:
			c.Status, c.FinishedAt, c.Reason = CommandInterrupted, new(now), "env values cleared"
		default:
			c.Status = CommandQueued
		}
		out = append(out, c.Clone())
	}
	slices.SortFunc(out, func(a, b *Command) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (r *commandRepo) RunningOwners(context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var owners []string
	for _, c := range r.cmds {
		if c.Status == CommandRunning {
			owners = append(owners, c.Owner)
		}
	}
	slices.Sort(owners)
	return slices.Compact(owners), nil
}

// takenOverReason is the Reason the fake gives commands InterruptHeldBy
// ended.
const takenOverReason = "taken over"

func (r *commandRepo) interrupt(now time.Time, reason string, audit func(*Command) *AuditEntry, which func(*Command) bool) []*Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Command
	for _, c := range r.cmds {
		if c.Status == CommandRunning && which(c) {
			c.Status, c.Reason, c.FinishedAt, c.LeaseExpiresAt = CommandInterrupted, reason, new(now), nil
			// The port: LastSeq and OutputBytes come from the stored output.
			c.LastSeq, c.OutputBytes = max(c.LastSeq, r.lastSeqLocked(c.ID)), max(c.OutputBytes, r.outputBytesLocked(c.ID))
			out = append(out, c.Clone())
		}
	}
	slices.SortFunc(out, func(a, b *Command) int { return strings.Compare(a.ID, b.ID) })
	if audit != nil {
		for _, c := range out {
			// The fake cannot roll back; its append fails only on request.
			_ = r.audit.add(audit(c))
		}
	}
	return out
}

func (r *commandRepo) RequestCancel(_ context.Context, id, reason string, now time.Time, audit *AuditEntry) (*Command, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.cmds[id]
	switch {
	case !ok:
		return nil, commandNotFound(id)
	case c.Status.Final():
		return nil, Errorf(ECONFLICT, "command %s already ended (%s)", id, c.Status)
	}
	if err := r.audit.add(audit); err != nil {
		return nil, err
	}
	switch c.Status {
	case CommandQueued:
		c.Status, c.Reason, c.FinishedAt = CommandCancelled, reason, new(now)
		c.ClearEnv()
		if audit != nil {
			if err := r.audit.add(FinishEntry(c, Finish{Status: c.Status, Reason: reason, FinishedAt: now})); err != nil {
				return nil, err
			}
		}
	default:
		if !c.CancelRequested {
			c.Reason = reason
		}
		c.CancelRequested = true
	}
	return c.Clone(), nil
}

func (r *commandRepo) FinishCommand(_ context.Context, lease Lease, f Finish, audit *AuditEntry) (*Command, error) {
	r.mu.Lock()
	hook := r.finishHook
	r.mu.Unlock()
	if hook != nil {
		if err := hook(lease.CommandID); err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	id := lease.CommandID
	if !f.Status.Final() || !slices.Contains(CommandStatuses, f.Status) {
		return nil, Errorf(EINVALID, "finish command %s: %q is not a final status", id, f.Status)
	}
	c, ok := r.cmds[id]
	switch {
	case !ok:
		return nil, commandNotFound(id)
	case !r.held(lease):
		return nil, fmt.Errorf("command %s (%s): %w", id, c.Status, ErrLeaseLost)
	}
	if err := r.audit.add(audit); err != nil {
		return nil, err
	}
	c.Status, c.ExitCode, c.Signal, c.Reason = f.Status, f.ExitCode, f.Signal, f.Reason
	c.FinishedAt, c.OutputBytes, c.Truncated, c.LastSeq = new(f.FinishedAt), f.OutputBytes, f.Truncated, f.LastSeq
	c.LostBytes, c.LeaseExpiresAt = f.LostBytes, nil
	r.storedAtFinish[id] = r.lastSeqLocked(id)
	return c.Clone(), nil
}

func (r *commandRepo) AppendOutput(_ context.Context, lease Lease, chunks []OutputChunk) error {
	r.mu.Lock()
	hook := r.appendHook
	r.mu.Unlock()
	if hook != nil {
		if err := hook(chunks); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if lease.Fenced() {
		if !r.held(lease) {
			return fmt.Errorf("command output %s: %w", lease.CommandID, ErrLeaseLost)
		}
		c := r.cmds[lease.CommandID]
		var fresh []OutputChunk // a retried write skips what is stored
		for _, ch := range chunks {
			if ch.CommandID != lease.CommandID {
				return Errorf(EINVALID, "command output: a chunk of command %s under the lease of %s", ch.CommandID, lease.CommandID)
			}
			if ch.Seq > c.LastSeq {
				fresh = append(fresh, ch)
			}
		}
		for _, ch := range fresh {
			c.LastSeq = ch.Seq
			c.OutputBytes += int64(len(ch.Data))
		}
		chunks = fresh
	}
	for _, ch := range chunks {
		// A store must not keep the recorder's bytes: they are recycled.
		ch.Data = strings.Clone(ch.Data)
		if c, ok := r.cmds[ch.CommandID]; ok && c.Status.Final() {
			r.lateChunks = append(r.lateChunks, ch)
		}
		stored := r.output[ch.CommandID]
		i, found := slices.BinarySearchFunc(stored, ch.Seq, func(c OutputChunk, seq int64) int { return cmp.Compare(c.Seq, seq) })
		if found {
			r.dupSeqs = append(r.dupSeqs, fmt.Sprintf("%s/%d", ch.CommandID, ch.Seq))
			continue
		}
		r.output[ch.CommandID] = slices.Insert(stored, i, ch)
	}
	return nil
}

func (r *commandRepo) ReadOutput(_ context.Context, commandID string, afterSeq int64, limit, maxBytes int) ([]OutputChunk, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.readErr != nil {
		return nil, r.readErr
	}
	stored := r.output[commandID]
	i, _ := slices.BinarySearchFunc(stored, afterSeq+1, func(c OutputChunk, seq int64) int { return cmp.Compare(c.Seq, seq) })
	out := stored[i:]
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	n, size := 0, 0
	for ; n < len(out) && (maxBytes <= 0 || size < maxBytes); n++ {
		size += len(out[n].Data)
	}
	r.readBytes = append(r.readBytes, size)
	return slices.Clone(out[:n]), nil
}

func (r *commandRepo) lastSeqLocked(id string) int64 {
	if s := r.output[id]; len(s) > 0 {
		return s[len(s)-1].Seq
	}
	return 0
}

func (r *commandRepo) outputBytesLocked(id string) int64 {
	var n int64
	for _, ch := range r.output[id] {
		n += int64(len(ch.Data))
	}
	return n
}

// command returns a copy of the stored command, or nil.
func (r *commandRepo) command(id string) *Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.cmds[id]; ok {
		return c.Clone()
	}
	return nil
}

// status returns the stored command's status, or "".
func (r *commandRepo) status(id string) CommandStatus {
	if c := r.command(id); c != nil {
		return c.Status
	}
	return ""
}

// stored returns a copy of a command's stored output.
func (r *commandRepo) stored(id string) []OutputChunk {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.output[id])
}

func (r *commandRepo) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.cmds)
}

func (r *commandRepo) claimCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.claims
}

// checkOrdering fails the test if a chunk was stored after its command's
// final state, a seq was stored twice, or a command was finished with a
// LastSeq other than the highest stored seq.
func (r *commandRepo) checkOrdering(tb testing.TB) {
	tb.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ch := range r.lateChunks {
		tb.Errorf("chunk %s/%d stored after the command's final state", ch.CommandID, ch.Seq)
	}
	if len(r.dupSeqs) > 0 {
		tb.Errorf("seqs stored twice: %v", r.dupSeqs)
	}
	for id, seq := range r.storedAtFinish {
		if c := r.cmds[id]; c.LastSeq != seq {
			tb.Errorf("command %s finished with LastSeq %d, but the highest stored seq then was %d", id, c.LastSeq, seq)
		}
	}
}

// fakeHub is an in-memory Hub. Publish never blocks: a subscriber whose
// buffer is full is dropped (its channel closed, Lagged true). It records
// every event published, per topic.
type fakeHub struct {
	mu     sync.Mutex
	subs   map[string]map[*hubSub]struct{}
	events map[string][]Event
	drops  int
	// passOnly: Publish records nothing, and holds an event's bytes only
	// for the subscribers it hands it to, as the real hub does.
	passOnly bool
}

var _ Hub = (*fakeHub)(nil)

type hubSub struct {
	hub    *fakeHub
	topic  string
	ch     chan Event
	done   chan struct{}
	lagged atomic.Bool
	closed bool // guarded by hub.mu
}

func newFakeHub() *fakeHub {
	return &fakeHub{subs: map[string]map[*hubSub]struct{}{}, events: map[string][]Event{}}
}

func (h *fakeHub) Publish(topic string, e Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// The record keeps the event's bytes for good, as the Hub contract
	// lets a holder do: it never releases them.
	if !h.passOnly {
		e.Hold.Retain()
		h.events[topic] = append(h.events[topic], e)
	}
	for s := range h.subs[topic] {
		e.Hold.Retain()
		select {
		case s.ch <- e:
		default:
			e.Hold.Release()
			s.lagged.Store(true)
			h.dropLocked(s)
			h.drops++
		}
	}
}

func (h *fakeHub) Subscribe(topic string, buffer int) HubSubscription {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := &hubSub{hub: h, topic: topic, ch: make(chan Event, buffer), done: make(chan struct{})}
	if h.subs[topic] == nil {
		h.subs[topic] = map[*hubSub]struct{}{}
	}
	h.subs[topic][s] = struct{}{}
	return s
}

func (h *fakeHub) dropLocked(s *hubSub) {
	if s.closed {
		return
	}
	s.closed = true
	close(s.ch)
	close(s.done)
	// As the real hub does, what the subscriber had not taken goes.
	for e := range s.ch {
		e.Hold.Release()
	}
	delete(h.subs[s.topic], s)
}

func (s *hubSub) Events() <-chan Event  { return s.ch }
func (s *hubSub) Lagged() bool          { return s.lagged.Load() }
func (s *hubSub) Done() <-chan struct{} { return s.done }

func (s *hubSub) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.dropLocked(s)
}

// subscribers counts the live subscriptions of topic.
func (h *fakeHub) subscribers(topic string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[topic])
}

func (h *fakeHub) dropCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.drops
}

// published returns the events published on topic so far.
func (h *fakeHub) published(topic string) []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events[topic])
}

// statuses returns, in order, the statuses of the status events about
// command id published on topic.
func (h *fakeHub) statuses(topic, id string) []CommandStatus {
	var out []CommandStatus
	for _, e := range h.published(topic) {
		if e.Kind == EventStatus && e.CommandID == id && e.Command != nil {
			out = append(out, e.Command.Status)
		}
	}
	return out
}

// fakeBroadcaster records what would go to other processes; it can fail.
type fakeBroadcaster struct {
	mu   sync.Mutex
	sent []broadcast
	err  error
}

type broadcast struct {
	topic string
	e     Event
}

var _ Broadcaster = (*fakeBroadcaster)(nil)

func (b *fakeBroadcaster) Broadcast(_ context.Context, topic string, e Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, broadcast{topic, e})
	return b.err
}

// all returns what was broadcast so far.
func (b *fakeBroadcaster) all() []broadcast {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.sent)
}

// topics returns, in order, the topics and kinds broadcast, as
// "topic kind" strings.
func (b *fakeBroadcaster) topics() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, s := range b.sent {
		out = append(out, fmt.Sprintf("%s %d", s.topic, s.e.Kind))
	}
	return out
}

// execStep is one step of a fake process: optionally wait for a gate or a
// pause (both give way to cancellation), then write data to a stream.
type execStep struct {
	stream Stream
	data   string
	pause  time.Duration
	wait   <-chan struct{}
}

// execScript is what a fake program does.
type execScript struct {
	steps []execStep
	// untilCancel keeps the process running after its steps until ctx ends.
	untilCancel bool
	// ignoreCancel keeps the process running this long after ctx ends,
	// like a program that traps SIGTERM; it then dies of SIGKILL.
	ignoreCancel time.Duration
	result       ExecResult
	// err, when set, is returned after the steps: the process could not
	// be run, or the backend failed.
	err error
}

// fakeExecutor runs scripts by program name (argv[0]); argv's last element
// tags the run. An unknown program fails to start with ENOTFOUND. A
// cancelled process ends with exit code -1 and SIGTERM. It records start
// order, which runs saw their context end, and the most runs at once.
type fakeExecutor struct {
	mu            sync.Mutex
	scripts       map[string]execScript
	started       []string
	finished      []string
	ctxEnded      map[string]bool
	running       map[string]int // by project
	total         int
	maxTotal      int
	maxPerProject int
	reqs          []ExecRequest
}

var _ Executor = (*fakeExecutor)(nil)

func newFakeExecutor() *fakeExecutor {
	return &fakeExecutor{scripts: map[string]execScript{}, ctxEnded: map[string]bool{}, running: map[string]int{}}
}

// program registers a script under a program name.
func (x *fakeExecutor) program(name string, s execScript) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.scripts[name] = s
}

func (x *fakeExecutor) Exec(ctx context.Context, req ExecRequest, stdout, stderr io.Writer) (ExecResult, error) {
	x.mu.Lock()
	s, ok := x.scripts[req.Argv[0]]
	if !ok {
		x.mu.Unlock()
		return ExecResult{}, Errorf(ENOTFOUND, "program %q not found in project %s", req.Argv[0], req.Project.ID)
	}
	tag, project := req.Argv[len(req.Argv)-1], req.Project.ID
	x.reqs = append(x.reqs, req)
	x.started = append(x.started, tag)
	x.running[project]++
	x.total++
	x.maxTotal = max(x.maxTotal, x.total)
	x.maxPerProject = max(x.maxPerProject, x.running[project])
	x.mu.Unlock()
	defer func() {
		x.mu.Lock()
		x.running[project]--
		x.total--
		x.finished = append(x.finished, tag)
		x.mu.Unlock()
	}()

	stopped := func() (ExecResult, error) {
		x.mu.Lock()
		x.ctxEnded[tag] = true
		x.mu.Unlock()
		if s.ignoreCancel > 0 {
			time.Sleep(s.ignoreCancel)
			_, _ = io.WriteString(stderr, "still here\n")
			return ExecResult{ExitCode: -1, Signal: "SIGKILL"}, nil
		}
		return ExecResult{ExitCode: -1, Signal: "SIGTERM"}, nil
	}
	for _, st := range s.steps {
		if st.wait != nil {
			select {
			case <-st.wait:
			case <-ctx.Done():
				return stopped()
			}
		}
		if st.pause > 0 {
			t := time.NewTimer(st.pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return stopped()
			}
		}
		if ctx.Err() != nil {
			return stopped()
		}
		w := stdout
		if st.stream == Stderr {
			w = stderr
		}
		_, _ = io.WriteString(w, st.data)
	}
	if s.untilCancel {
		<-ctx.Done()
		return stopped()
	}
	return s.result, s.err
}

func (x *fakeExecutor) startedTags() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.started)
}

func (x *fakeExecutor) finishedTags() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.finished)
}

func (x *fakeExecutor) hasStarted(tag string) bool {
	return slices.Contains(x.startedTags(), tag)
}

func (x *fakeExecutor) sawCtxEnd(tag string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.ctxEnded[tag]
}

func (x *fakeExecutor) maxima() (total, perProject int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.maxTotal, x.maxPerProject
}

func (x *fakeExecutor) runningNow() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.total
}

// lines returns steps that write n numbered lines, one write each.
func lines(stream Stream, n int) []execStep {
	steps := make([]execStep, n)
	for i := range steps {
		steps[i] = execStep{stream: stream, data: numberedLine(i + 1)}
	}
	return steps
}

func numberedLine(i int) string { return fmt.Sprintf("line %05d\n", i) }

// waitFor polls cond until it holds, failing the test after a generous
// deadline. Conditions are waited for, never slept for.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

var discardLogger = slog.New(slog.DiscardHandler)

// commandEnv is a CommandService and its fakes.
type commandEnv struct {
	repo     *commandRepo
	hub      *fakeHub
	projects *projectRepo
	exec     *fakeExecutor
	svc      *CommandService
	limits   CommandLimits
	// bcast and now, when set before startDispatcher, are the
	// dispatcher's.
	bcast Broadcaster
	now   func() time.Time
}

// testLimits are DefaultCommandLimits with a small queue per key.
func testLimits() CommandLimits {
	lim := DefaultCommandLimits
	lim.MaxQueuedPerKey = 5
	lim.ClaudeCommand = []string{"claude", "--output-format", "stream-json"}
	return lim
}

// newCommandEnv returns a service over fresh fakes with the projects web,
// api and db RUNNING and asleep NOT_READY.
func newCommandEnv(tb testing.TB) *commandEnv {
	tb.Helper()
	e := &commandEnv{
		repo: newCommandRepo(), hub: newFakeHub(), exec: newFakeExecutor(), limits: testLimits(),
		projects: newProjectRepo(
			&Project{ID: "web", Status: ProjectRunning},
			&Project{ID: "api", Status: ProjectRunning},
			&Project{ID: "db", Status: ProjectRunning},
			&Project{ID: "asleep", Status: ProjectNotReady},
		),
	}
	e.svc = NewCommandService(e.repo, e.projects, e.hub, nil, NewAuditService(e.repo.audit, nil), e.limits, nil)
	return e
}

// testDispatcherConfig is quick to claim, renew and flush.
func testDispatcherConfig() DispatcherConfig {
	return DispatcherConfig{
		Owner: "dispatcher-1", Concurrency: 4, PerProject: 1,
		LeaseTTL: 300 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		Output: OutputConfig{FlushDelay: 2 * time.Millisecond}, Logger: discardLogger,
	}
}

// startDispatcher runs a dispatcher until the returned stop is called (or
// the test ends); stop waits for Run to return.
func (e *commandEnv) startDispatcher(tb testing.TB, cfg DispatcherConfig) (d *Dispatcher, stop func()) {
	tb.Helper()
	d = NewDispatcher(e.repo, e.projects, e.exec, e.hub, e.bcast, cfg)
	if e.now != nil {
		d.now = e.now
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				tb.Errorf("Run did not return after its context ended")
			}
		})
	}
	tb.Cleanup(stop)
	// Run subscribes to the queue topic first thing; wait for it so that
	// wake-ups and cancels published next are not missed.
	waitFor(tb, "the dispatcher to subscribe", func() bool { return e.hub.subscribers(QueueTopic) > 0 })
	return d, stop
}

// queue stores a QUEUED command directly, as Execute would, filling in the
// ID, status, creation time and timeout when unset.
func (e *commandEnv) queue(tb testing.TB, c *Command) *Command {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if c.ID == "" {
		c.ID = NewID(now)
	}
	if c.Status == "" {
		c.Status = CommandQueued
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = now
	}
	if c.Timeout == 0 {
		c.Timeout = time.Minute
	}
	if err := e.repo.CreateCommand(context.Background(), c, nil); err != nil {
		tb.Fatalf("CreateCommand: %v", err)
	}
	return c
}

// waitFinal waits until the command has a final status and returns it.
func (e *commandEnv) waitFinal(tb testing.TB, id string) *Command {
	tb.Helper()
	waitFor(tb, "command "+id+" to end", func() bool { return e.repo.status(id).Final() })
	return e.repo.command(id)
}

// wantStatuses waits until topic has carried as many status events about
// command id as want lists, and checks them.
func (e *commandEnv) wantStatuses(tb testing.TB, topic, id string, want ...CommandStatus) {
	tb.Helper()
	waitFor(tb, fmt.Sprintf("%d status events on %s", len(want), topic), func() bool {
		return len(e.hub.statuses(topic, id)) >= len(want)
	})
	if got := e.hub.statuses(topic, id); !slices.Equal(got, want) {
		tb.Errorf("%s statuses = %v, want %v", topic, got, want)
	}
}

// writer and reader are API keys with the command scopes.
var (
	writerKey = &APIKey{ID: "0000writerkey000", Scopes: Scopes{ScopeCommandsRead, ScopeCommandsWrite}}
	otherKey  = &APIKey{ID: "0000otherkey0000", Scopes: Scopes{ScopeCommandsWrite}}
	readerKey = &APIKey{ID: "0000readerkey000", Scopes: Scopes{ScopeCommandsRead}}
)

// collectOutput reads a stream until it closes and checks its invariants:
// chunks in strictly increasing seq order, at most one Finished event and
// nothing after it. Call it from the test's goroutine; others use
// readOutput.
func collectOutput(tb testing.TB, ch <-chan OutputEvent) (chunks []OutputChunk, fin *Command) {
	tb.Helper()
	chunks, fin, err := readOutput(ch)
	if err != nil {
		tb.Fatal(err)
	}
	return chunks, fin
}

// readOutput is collectOutput returning what went wrong. Gaps are checked
// (a chunk after a skip in seqs must follow a gap that names the skip, and
// a gap must be followed by the chunk it names) and left out.
func readOutput(ch <-chan OutputEvent) (chunks []OutputChunk, fin *Command, err error) {
	timeout := time.After(30 * time.Second)
	var gap *OutputGap
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return chunks, fin, nil
			}
			switch {
			case fin != nil:
				return chunks, fin, fmt.Errorf("event after Finished: %+v", e)
			case e.Finished != nil && e.Chunk != nil:
				return chunks, fin, fmt.Errorf("event with both a chunk and Finished: %+v", e)
			case e.Finished != nil:
				if gap != nil && gap.NextSeq != e.Finished.LastSeq+1 {
					return chunks, fin, fmt.Errorf("gap %+v before the end at lastSeq %d", *gap, e.Finished.LastSeq)
				}
				gap, fin = nil, e.Finished
			case e.Gap != nil:
				if n := len(chunks); gap != nil || (n > 0 && e.Gap.AfterSeq != chunks[n-1].Seq) || e.Gap.NextSeq <= e.Gap.AfterSeq+1 {
					return chunks, fin, fmt.Errorf("gap %+v after %d chunks, pending gap %v", *e.Gap, n, gap)
				}
				gap = e.Gap
			case e.Chunk != nil:
				n := len(chunks)
				if n > 0 && e.Chunk.Seq <= chunks[n-1].Seq {
					return chunks, fin, fmt.Errorf("seq %d after seq %d: not strictly increasing", e.Chunk.Seq, chunks[n-1].Seq)
				}
				if gap != nil && gap.NextSeq != e.Chunk.Seq || gap == nil && n > 0 && e.Chunk.Seq != chunks[n-1].Seq+1 {
					return chunks, fin, fmt.Errorf("seq %d after %d chunks with gap %v: a skip without its gap", e.Chunk.Seq, n, gap)
				}
				gap = nil
				chunks = append(chunks, *e.Chunk)
			default:
				return chunks, fin, fmt.Errorf("empty output event")
			}
		case <-timeout:
			return chunks, fin, fmt.Errorf("output stream did not close; got %d chunks, finished=%v", len(chunks), fin != nil)
		}
	}
}

// seqs returns the seqs of chunks.
func seqs(chunks []OutputChunk) []int64 {
	out := make([]int64, len(chunks))
	for i, c := range chunks {
		out[i] = c.Seq
	}
	return out
}

// seqRange returns from, from+1, … to.
func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

// joined concatenates the data of the chunks of one stream ("" for all).
func joined(chunks []OutputChunk, s Stream) string {
	var b strings.Builder
	for _, c := range chunks {
		if s == "" || c.Stream == s {
			b.WriteString(c.Data)
		}
	}
	return b.String()
}
