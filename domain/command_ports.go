package domain

import (
	"context"
	"io"
	"time"
)

// CommandFilter selects commands for FindCommands, newest first.
type CommandFilter struct {
	ProjectID string
	// ProjectIDs, unless nil, keeps only commands of these projects (none
	// when empty): a caller's project scope.
	ProjectIDs []string
	Status     CommandStatus
	// AgentSession, unless "", keeps only agent runs that resume it.
	AgentSession string
	// BeforeID pages backwards from the newest: only IDs below it.
	BeforeID string
	// ChangedSince, unless zero, keeps only commands queued, started or
	// finished at or after it.
	ChangedSince time.Time
	Limit        int
}

// ClaimRequest asks the queue for work.
type ClaimRequest struct {
	// Owner names the claiming dispatcher; it holds the leases.
	Owner string
	// Max is how many commands to claim at most.
	Max int
	// PerProject caps RUNNING commands per project, across all owners.
	PerProject int
	// LeaseUntil is when the new leases expire unless renewed.
	LeaseUntil time.Time
	// Now is the start time recorded on claimed commands.
	Now time.Time
}

// Lease names the hold one dispatcher has on a running command: the owner
// that claimed it and the epoch of that claim. Writes made under a lease are
// fenced: they are stored only while the command is RUNNING under that
// owner and epoch, so a process that lost a command (its lease expired and
// another process ended it) can write nothing more for it.
type Lease struct {
	CommandID string
	// Owner is "" for writes that are not fenced: imports and tests.
	Owner string
	Epoch int64
}

// Fenced reports whether writes under the lease are fenced: it has an owner.
func (l Lease) Fenced() bool { return l.Owner != "" }

// ErrLeaseLost is returned (wrapped) by writes fenced by a lease the writer
// no longer holds. Its code is ECONFLICT.
var ErrLeaseLost = &Error{Code: ECONFLICT, Message: "the command's lease is lost: another process ended it"}

// LeaseRenewal is what RenewLeases found.
type LeaseRenewal struct {
	// Cancel lists the renewed commands whose cancellation was requested.
	Cancel []string
	// Lost lists the commands asked for that are no longer RUNNING under
	// the owner: their processes must stop.
	Lost []string
}

// Finish is the final state written by FinishCommand.
type Finish struct {
	Status      CommandStatus
	ExitCode    *int
	Signal      string
	Reason      string
	FinishedAt  time.Time
	OutputBytes int64
	Truncated   bool
	LastSeq     int64
	// LostBytes counts output that could not be stored.
	LostBytes int64
}

// PendingFinish is a command's end that storage refused, kept on the machine
// that ran the command until it is stored.
type PendingFinish struct {
	Lease  Lease
	Finish Finish
	// KeyID, ProjectID and StartedAt are the command's, for its audit entry
	// and events.
	KeyID     string
	ProjectID string
	StartedAt *time.Time
}

// FinishJournal keeps, on the machine that runs commands, the ends storage
// refused, so that a restart of rdev during an outage does not lose them:
// the next dispatcher stores them before anything else.
type FinishJournal interface {
	// Keep records p (replacing an earlier record of its command), durably
	// before it returns.
	Keep(p PendingFinish) error
	// Drop forgets the record of a command; none is not an error.
	Drop(commandID string) error
	// Pending returns every record kept.
	Pending() ([]PendingFinish, error)
}

// QueueStats describes the queue at one moment.
type QueueStats struct {
	// Queued counts QUEUED commands by priority.
	Queued map[Priority]int
	// Running counts RUNNING commands.
	Running int
}

// CommandRepository stores commands, their queue state and their output.
type CommandRepository interface {
	// CreateCommand inserts a QUEUED command and, in the same transaction,
	// appends audit unless it is nil. It returns ECONFLICT when the key
	// already has a command with the same ClientToken, or when c resumes an
	// agent session (AgentSession) that a QUEUED or RUNNING command of its
	// project resumes too: one run of a session at a time, however many
	// processes queue them at once.
	CreateCommand(ctx context.Context, c *Command, audit *AuditEntry) error
	// FindCommandByID returns ENOTFOUND if there is no such command.
	FindCommandByID(ctx context.Context, id string) (*Command, error)
	// FindCommandByClientToken returns ENOTFOUND if the key has none.
	FindCommandByClientToken(ctx context.Context, keyID, token string) (*Command, error)
	// FindCommands returns matching commands, newest first.
	FindCommands(ctx context.Context, f CommandFilter) ([]*Command, error)
	// FindCommandsForProjects returns, for each of projectIDs, its newest
	// commands (at most limit, newest first; only those in status unless it
	// is ""), in one query. Projects without commands are absent.
	FindCommandsForProjects(ctx context.Context, projectIDs []string, status CommandStatus, limit int) (map[string][]*Command, error)
	// CountQueued counts the QUEUED commands a key submitted.
	CountQueued(ctx context.Context, keyID string) (int, error)
	// QueueStats counts queued commands by priority and running ones.
	QueueStats(ctx context.Context) (QueueStats, error)

	// ClaimCommands moves up to r.Max QUEUED commands to RUNNING for r.Owner,
	// highest priority first and FIFO within one, never letting a project
	// exceed r.PerProject RUNNING commands. Concurrent claims, from any
	// number of processes, never claim one command twice.
	ClaimCommands(ctx context.Context, r ClaimRequest) ([]*Command, error)
	// RenewLeases extends the leases owner holds on ids until until. It
	// reports, sorted, the IDs among them whose cancellation was requested
	// and those owner no longer holds.
	RenewLeases(ctx context.Context, owner string, ids []string, until time.Time) (LeaseRenewal, error)
	// ExpireLeases ends every RUNNING command whose lease expired before now
	// as INTERRUPTED, with LastSeq and OutputBytes taken from its stored
	// output, and returns them. Unless audit is nil, the entry it makes of
	// each ended command is appended in the same transaction.
	ExpireLeases(ctx context.Context, now time.Time, audit func(*Command) *AuditEntry) ([]*Command, error)
	// InterruptHeldBy ends every RUNNING command held by one of owners as
	// ExpireLeases does, whatever its lease: for a process that knows them
	// to be gone.
	InterruptHeldBy(ctx context.Context, owners []string, now time.Time, audit func(*Command) *AuditEntry) ([]*Command, error)
	// ReleaseUnstarted puts back in the queue every command RUNNING under
	// owner whose ID is not in started: those a claim gave owner though its
	// reply never reached it (the connection broke as it committed), so
	// they never started. One whose cancellation was requested meanwhile
	// ends CANCELLED, finished at now, instead. It returns them as changed.
	ReleaseUnstarted(ctx context.Context, owner string, started []string, now time.Time) ([]*Command, error)
	// RunningOwners returns the owners of RUNNING commands, sorted.
	RunningOwners(ctx context.Context) ([]string, error)
	// RequestCancel cancels a QUEUED command at once (CANCELLED, with
	// reason), or flags a RUNNING one for its owner to stop. It returns the
	// command as it is after the change; ECONFLICT if it already ended;
	// ENOTFOUND if there is none. A non-nil audit entry is appended in the
	// same transaction as the change, followed, for a command cancelled at
	// once, by its command.finish entry (FinishEntry).
	RequestCancel(ctx context.Context, id, reason string, now time.Time, audit *AuditEntry) (*Command, error)
	// FinishCommand writes a RUNNING command's final state, if lease still
	// holds it. It returns ErrLeaseLost if the command is no longer RUNNING
	// under the lease's owner and epoch (its lease expired and it was
	// interrupted). A non-nil audit entry is appended in the transaction
	// that writes the state. A finish repeated after it was stored (its
	// reply lost) returns the command as stored.
	FinishCommand(ctx context.Context, lease Lease, f Finish, audit *AuditEntry) (*Command, error)

	// AppendOutput stores chunks in one write, all or none. Under a fenced
	// lease, every chunk is of the lease's command, the write is
	// fenced (ErrLeaseLost if the lease is no longer held), chunks already
	// stored are skipped, so a retried write is harmless, and the command's
	// LastSeq and OutputBytes grow to what is stored so far. A lease without
	// an owner stores chunks of any commands unfenced. It
	// must not keep the chunks' Data once it returns: the recorder's memory
	// is recycled.
	AppendOutput(ctx context.Context, lease Lease, chunks []OutputChunk) error
	// ReadOutput returns the chunks of a command with Seq > afterSeq, in Seq
	// order: up to limit of them (all if limit is 0), and, if maxBytes is
	// above 0, none after the one that brings their Data to maxBytes bytes
	// or more. So a read returns at least one chunk if there is one, and
	// fewer than limit chunks and maxBytes bytes only at the end.
	ReadOutput(ctx context.Context, commandID string, afterSeq int64, limit, maxBytes int) ([]OutputChunk, error)
}

// ExecRequest is what an Executor runs.
type ExecRequest struct {
	Project *Project
	Argv    []string
	Env     map[string]string
	// SecretFiles are file secrets (SecretAsFile), name to value: the
	// executor writes each to a file of that name in a directory of the
	// command's own, readable only by the command's user, names that
	// directory in $RDEV_SECRETS_DIR (SecretsDirVar), and removes it once
	// the command has ended.
	SecretFiles map[string]string
	// Workdir is relative to the project's root; "" means the root.
	Workdir string
	// Network is what network the command may reach; "" is NetworkAny.
	// An executor that cannot hold a policy other than NetworkAny must
	// refuse to run the command, never run it with the network.
	Network ProjectNetwork
}

// ExecResult is how a process ended.
type ExecResult struct {
	// ExitCode is the process's exit status; -1 if a signal ended it.
	ExitCode int
	// Signal names the signal that ended it ("" if none), e.g. "SIGTERM".
	Signal string
}

// Executor runs a process in a project. Exec blocks until the process has
// ended. When ctx ends first, Exec must stop the process itself and every
// process it started (SIGTERM, then SIGKILL after a grace period), not just
// stop reading its output, and return once they are gone. It writes output
// to stdout and stderr as it arrives; the two writers may be called
// concurrently. An error means the process could not be run at all (ENOTFOUND
// for a missing project or program, EUNAVAILABLE when the backend is down).
type Executor interface {
	Exec(ctx context.Context, req ExecRequest, stdout, stderr io.Writer) (ExecResult, error)
}

// EventKind says what a hub Event reports.
type EventKind int

// The event kinds.
const (
	// EventOutput carries stored output chunks, or only UpTo when another
	// process stored them.
	EventOutput EventKind = iota
	// EventStatus carries a command whose status changed.
	EventStatus
	// EventCancel asks the process running Command.ID to stop it.
	EventCancel
	// EventQueued says new work is queued.
	EventQueued
	// EventProject carries a project whose state changed.
	EventProject
	// EventKey names an API key that changed (KeysTopic).
	EventKey
)

// Event is what the hub fans out. Topics: CommandTopic for output and status
// of one command, ProjectTopic for status of a project's commands,
// ProjectsTopic for projects' own state, and QueueTopic for dispatchers.
type Event struct {
	Kind EventKind
	// Command is set for EventStatus and EventCancel.
	Command *Command
	// CommandID is set for every command event.
	CommandID string
	// Chunks are stored output, in Seq order; may be empty for EventOutput
	// from another process, which sets only UpTo.
	Chunks []OutputChunk
	// UpTo is the highest Seq stored when the event was made.
	UpTo int64
	// Hold, when set, keeps Chunks' bytes from being reused: a Hub retains
	// it for each subscriber it hands the event to (see Hold).
	Hold *Hold
	// Project is set for EventProject.
	Project *Project
	// KeyID is set for EventKey.
	KeyID string
}

// CommandTopic is the hub topic of one command's output and status.
func CommandTopic(id string) string { return "command:" + id }

// ProjectTopic is the hub topic of status changes in a project.
func ProjectTopic(id string) string { return "project:" + id }

// QueueTopic is the hub topic that wakes dispatchers and carries cancels.
const QueueTopic = "queue"

// ProjectsTopic is the hub topic of changes to projects themselves (status,
// labels, annotations).
const ProjectsTopic = "projects"

// Hub fans events out to subscribers in this process. Publish never blocks:
// a subscriber whose buffer is full (of events, or of output bytes, as the
// hub was configured) is dropped and told so, and must catch up from
// storage. Publish retains e.Hold once for each subscriber it hands e
// to, before the subscriber can see it.
type Hub interface {
	Publish(topic string, e Event)
	Subscribe(topic string, buffer int) HubSubscription
}

// HubSubscription is one subscriber's view of a topic.
type HubSubscription interface {
	// Events delivers events in publish order. It is closed by Close, or
	// when the subscriber fell behind (then Lagged reports true); the
	// events it still buffered then are discarded, and their Holds
	// released.
	Events() <-chan Event
	// Lagged reports whether events were dropped because the buffer was full.
	Lagged() bool
	// Done is closed when Events is, so that a subscriber waiting on
	// something else learns that it was dropped without taking an event.
	Done() <-chan struct{}
	// Close unsubscribes; it is safe to call more than once.
	Close()
}

// Broadcaster carries events to other rdev processes sharing the database
// (Postgres LISTEN/NOTIFY); they republish them on their own hub. Only IDs
// and sequence numbers travel; receivers read the rest from storage. In a
// single process it does nothing.
type Broadcaster interface {
	Broadcast(ctx context.Context, topic string, e Event) error
}
