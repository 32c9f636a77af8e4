package client

import (
	"context"
	"crypto/rand"
	"time"
)

// Status is where a command is in its life.
type Status string

// The statuses of a command; the last five are final.
const (
	StatusQueued      Status = "QUEUED"
	StatusRunning     Status = "RUNNING"
	StatusSucceeded   Status = "SUCCEEDED"
	StatusFailed      Status = "FAILED"
	StatusCancelled   Status = "CANCELLED"
	StatusTimedOut    Status = "TIMED_OUT"
	StatusInterrupted Status = "INTERRUPTED"
)

// Final reports whether a command with this status has ended.
func (s Status) Final() bool { return s != StatusQueued && s != StatusRunning }

// Priority is a command's place in the queue: LOW, NORMAL, HIGH or URGENT.
type Priority string

// The priorities, lowest first.
const (
	PriorityLow    Priority = "LOW"
	PriorityNormal Priority = "NORMAL"
	PriorityHigh   Priority = "HIGH"
	PriorityUrgent Priority = "URGENT"
)

// Command is a command as the server reports it.
type Command struct {
	ID        string `json:"id"`
	ProjectID string `json:"projectId"`
	Status    Status `json:"status"`
	// ExitCode is the exit status, when the process exited by itself.
	ExitCode *int `json:"exitCode"`
	// Signal is the signal that ended the process, e.g. SIGKILL; "" if none.
	Signal string `json:"signal"`
	// Reason says why it failed, was cancelled, timed out or was
	// interrupted.
	Reason          string `json:"reason"`
	CancelRequested bool   `json:"cancelRequested"`
	// LastSeq is the highest output seq stored so far.
	LastSeq         int   `json:"lastSeq"`
	Truncated       bool  `json:"truncated"`
	OutputLostBytes int64 `json:"outputLostBytes"`
	// DurationMs is how long it ran; nil until it ends.
	DurationMs  *int   `json:"durationMs"`
	ClientToken string `json:"clientToken"`
}

// commandFields selects a Command.
const commandFields = `id projectId status exitCode signal reason cancelRequested lastSeq truncated outputLostBytes durationMs clientToken`

// EnvVar is an environment variable for a command.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ExecuteInput is what to run, where and how. Give exactly one of Argv,
// Shell and Prompt.
type ExecuteInput struct {
	// ProjectID is the project to run in; it must be RUNNING.
	ProjectID string
	// Argv is the program and its arguments, run as given (no shell).
	Argv []string
	// Shell is a script for /bin/sh -c.
	Shell string
	// Prompt is a prompt for the Claude Code CLI, which the server runs as
	// its configured command (RDEV_CLAUDE_COMMAND) followed by
	// -p -- PROMPT, the prompt as one argument, never through a shell.
	Prompt string
	Env    []EnvVar
	// Workdir is the working directory, relative to the project root.
	Workdir string
	// Priority is the queue priority; "" is NORMAL.
	Priority Priority
	// Timeout kills the command after this long, rounded up to whole
	// seconds; 0 uses the server's default.
	Timeout time.Duration
	// ClientToken is the idempotency token: submitting again with it runs
	// nothing twice. "" makes a random one, which the returned Command
	// carries.
	ClientToken string
}

// vars is the ExecuteCommandInput.
func (in ExecuteInput) vars() map[string]any {
	v := map[string]any{"projectId": in.ProjectID, "clientToken": in.ClientToken}
	switch {
	case in.Prompt != "":
		v["prompt"] = in.Prompt
	case in.Shell != "":
		v["shell"] = in.Shell
	default:
		v["argv"] = in.Argv
	}
	if in.Priority != "" {
		v["priority"] = in.Priority
	}
	if in.Env != nil {
		v["env"] = in.Env
	}
	if in.Workdir != "" {
		v["workdir"] = in.Workdir
	}
	if in.Timeout > 0 {
		v["timeoutSeconds"] = int((in.Timeout + time.Second - 1) / time.Second)
	}
	return v
}

const (
	executeMutation = `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { ` + commandFields + ` } } }`
	cancelMutation  = `mutation($id: ID!) { cancelCommand(input: {id: $id}) { command { ` + commandFields + ` } } }`
	commandQuery    = `query($id: ID!) { command(id: $id) { ` + commandFields + ` } }`
)

// Execute queues a command and returns it, QUEUED (or as it is now, if its
// ClientToken was used before). A request that fails on the way is sent
// again with the same token, so the command is queued once. Errors: an
// *Error with NOT_FOUND (no such project, or out of the key's scope),
// INVALID_INPUT, CONFLICT (the token was used for another command),
// FORBIDDEN, RATE_LIMITED (too many queued), UNAUTHENTICATED.
func (c *Client) Execute(ctx context.Context, in ExecuteInput) (*Command, error) {
	if in.ClientToken == "" {
		in.ClientToken = rand.Text()
	}
	var r struct {
		ExecuteCommand struct {
			Command Command `json:"command"`
		} `json:"executeCommand"`
	}
	if err := c.do(ctx, executeMutation, map[string]any{"in": in.vars()}, &r); err != nil {
		return nil, err
	}
	cmd := r.ExecuteCommand.Command
	if cmd.ClientToken == "" {
		cmd.ClientToken = in.ClientToken
	}
	return &cmd, nil
}

// Cancel cancels a command: a queued one ends CANCELLED at once; a running
// one is returned RUNNING with CancelRequested set and is stopped with its
// whole process group. Errors: an *Error with NOT_FOUND, or CONFLICT for a
// command that has already ended.
func (c *Client) Cancel(ctx context.Context, id string) (*Command, error) {
	var r struct {
		CancelCommand struct {
			Command Command `json:"command"`
		} `json:"cancelCommand"`
	}
	if err := c.do(ctx, cancelMutation, map[string]any{"id": id}, &r); err != nil {
		return nil, err
	}
	return &r.CancelCommand.Command, nil
}

// Command returns a command as it is now. Errors: an *Error with
// NOT_FOUND.
func (c *Client) Command(ctx context.Context, id string) (*Command, error) {
	var r struct {
		Command *Command `json:"command"`
	}
	if err := c.do(ctx, commandQuery, map[string]any{"id": id}, &r); err != nil {
		return nil, err
	}
	if r.Command == nil {
		return nil, &Error{Code: "NOT_FOUND", Message: "command " + id + " not found"}
	}
	return r.Command, nil
}
