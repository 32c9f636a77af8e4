package domain

import (
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// CommandType says how a command's argv was made.
type CommandType string

// The command types.
const (
	// CommandExec runs argv as given.
	CommandExec CommandType = "EXEC"
	// CommandShell runs a script with /bin/sh -c.
	CommandShell CommandType = "SHELL"
	// CommandClaude runs the Claude Code CLI with a prompt as one argv
	// element, never through a shell.
	CommandClaude CommandType = "CLAUDE"
)

// Priority orders the queue: higher runs first, FIFO within a priority.
type Priority int

// The priorities. The zero value is NORMAL.
const (
	PriorityLow Priority = iota - 1
	PriorityNormal
	PriorityHigh
	PriorityUrgent
)

// Priorities lists every priority, lowest first.
var Priorities = []Priority{PriorityLow, PriorityNormal, PriorityHigh, PriorityUrgent}

var priorityNames = map[Priority]string{
	PriorityLow: "LOW", PriorityNormal: "NORMAL", PriorityHigh: "HIGH", PriorityUrgent: "URGENT",
}

// String returns the priority's name, e.g. "HIGH".
func (p Priority) String() string {
	if n, ok := priorityNames[p]; ok {
		return n
	}
	return "UNKNOWN"
}

// ParsePriority parses a priority name. It returns EINVALID for an unknown one.
func ParsePriority(name string) (Priority, error) {
	for p, n := range priorityNames {
		if n == name {
			return p, nil
		}
	}
	return 0, Errorf(EINVALID, "priority: unknown priority %q (want LOW, NORMAL, HIGH or URGENT)", Clip(name))
}

// CommandStatus is where a command is in its life.
type CommandStatus string

// The command states. QUEUED and RUNNING are live; the rest are final.
const (
	CommandQueued      CommandStatus = "QUEUED"
	CommandRunning     CommandStatus = "RUNNING"
	CommandSucceeded   CommandStatus = "SUCCEEDED"
	CommandFailed      CommandStatus = "FAILED"
	CommandCancelled   CommandStatus = "CANCELLED"
	CommandTimedOut    CommandStatus = "TIMED_OUT"
	CommandInterrupted CommandStatus = "INTERRUPTED"
)

// CommandStatuses lists every command state.
var CommandStatuses = []CommandStatus{
	CommandQueued, CommandRunning, CommandSucceeded, CommandFailed,
	CommandCancelled, CommandTimedOut, CommandInterrupted,
}

// Final reports whether the status is an end state.
func (s CommandStatus) Final() bool {
	return s != CommandQueued && s != CommandRunning && s != ""
}

// Command is one run of a program in a project. Commands are never re-run:
// one that was RUNNING when its process died ends INTERRUPTED.
type Command struct {
	ID        string
	ProjectID string
	// KeyID is the API key that submitted it ("" for the operator).
	KeyID string
	Type  CommandType
	// Argv is exactly what is executed.
	Argv []string
	// Env holds the values of the command's environment only until it
	// starts: the claim that starts it returns them to the executor and
	// leaves the names alone in storage, each with an empty value (see
	// EnvCleared), so no stored command that has started keeps a value.
	Env     map[string]string
	Workdir string
	// Priority orders the queue.
	Priority Priority
	// Timeout ends the command TIMED_OUT; 0 means the server default.
	Timeout time.Duration
	// ClientToken makes submission idempotent per key; "" for none.
	ClientToken string
	// AgentProtocol names the AgentProtocol of an agent run (see
	// AgentService), whose standard output that protocol reads; "" for
	// every other command.
	AgentProtocol string
	// AgentSession is the agent session an agent run resumes; "" for a
	// run that starts a new one and for every other command. Only one
	// QUEUED or RUNNING run of a project may resume a given session.
	AgentSession string

	Status CommandStatus
	// ExitCode is set when the process exited by itself.
	ExitCode *int
	// Signal names the signal that ended the process, e.g. "SIGKILL".
	Signal string
	// Reason explains a FAILED, CANCELLED, TIMED_OUT or INTERRUPTED end.
	Reason string

	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time

	// OutputBytes counts every byte the command wrote, stored or not.
	OutputBytes int64
	// Truncated is set when output passed the cap: the head and a tail
	// window were kept, the middle dropped.
	Truncated bool
	// LastSeq is the highest output sequence number stored.
	LastSeq int64
	// LostBytes counts output that could not be stored: storage failed
	// for longer than output is held for it. Unlike Truncated, it is a
	// fault, never a policy.
	LostBytes int64

	// CancelRequested asks the dispatcher that runs the command to stop it.
	CancelRequested bool
	// Owner is the dispatcher holding the command's lease while it runs.
	Owner          string
	LeaseExpiresAt *time.Time
	// LeaseEpoch grows by one with every claim: with Owner it fences the
	// writes of the process running the command (see Lease).
	LeaseEpoch int64

	// TraceParent and TraceState are the W3C trace context of the request
	// that queued the command ("" without one): the span of its run, in
	// whichever process claims it, joins that trace.
	TraceParent string
	TraceState  string
}

// Duration returns how long the command ran, or 0 if it has not finished.
func (c *Command) Duration() time.Duration {
	if c.StartedAt == nil || c.FinishedAt == nil {
		return 0
	}
	return c.FinishedAt.Sub(*c.StartedAt)
}

// EnvCleared reports whether storage no longer holds the values of c's
// environment, only its names: c has started (or ended).
func (c *Command) EnvCleared() bool {
	return c.Status != CommandQueued
}

// EnvNames returns the names of c's environment variables, sorted.
func (c *Command) EnvNames() []string {
	return slices.Sorted(maps.Keys(c.Env))
}

// ClearEnv keeps the names of c's environment and drops their values, as
// storage does when c starts.
func (c *Command) ClearEnv() {
	for k := range c.Env {
		c.Env[k] = ""
	}
}

// Lease returns the hold the command's owner has on it while it runs.
func (c *Command) Lease() Lease {
	return Lease{CommandID: c.ID, Owner: c.Owner, Epoch: c.LeaseEpoch}
}

// Clone returns a deep copy.
func (c *Command) Clone() *Command {
	cp := *c
	cp.Argv = slices.Clone(c.Argv)
	cp.Env = maps.Clone(c.Env)
	return &cp
}

// Stream names an output stream.
type Stream string

// The output streams.
const (
	Stdout Stream = "STDOUT"
	Stderr Stream = "STDERR"
)

// OutputChunk is a numbered piece of a command's output. Seq runs 1, 2, 3 …
// per command across both streams; chunks never split a UTF-8 character.
type OutputChunk struct {
	CommandID string
	Seq       int64
	Stream    Stream
	Data      string
	At        time.Time
}

// Clip shortens user input to be quoted in an error message: at most 80
// bytes, cut on a character boundary, with "…" when cut.
func Clip(s string) string {
	const n = 80
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// hasControl reports whether s holds a control character other than tab,
// newline and carriage return.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool {
		return (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0x7f
	}) >= 0
}
