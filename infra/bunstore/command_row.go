package bunstore

import (
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

// commandRow is a row of commands. Bun tags live here, not on domain.Command.
type commandRow struct {
	bun.BaseModel `bun:"table:commands,alias:c"`

	ID        string            `bun:"id,pk"`
	ProjectID string            `bun:"project_id"`
	KeyID     string            `bun:"key_id"`
	Type      string            `bun:"type"`
	Argv      []string          `bun:"argv"` // a JSON array
	Env       map[string]string `bun:"env"`  // a JSON object
	Workdir   string            `bun:"workdir"`
	Priority  int               `bun:"priority"`
	TimeoutMS int64             `bun:"timeout_ms"`
	// ClientToken is NULL when empty, so commands without one never
	// conflict in the (key_id, client_token) unique constraint.
	ClientToken string `bun:"client_token,nullzero"`
	// AgentProtocol is "" for a command that is not an agent run.
	AgentProtocol string `bun:"agent_protocol"`
	// AgentSession is "" unless the command is an agent run that resumes
	// a session.
	AgentSession string `bun:"agent_session"`

	Status string `bun:"status"`
	// ExitCode is NULL until the process exits by itself.
	ExitCode *int   `bun:"exit_code"`
	Signal   string `bun:"signal"`
	Reason   string `bun:"reason"`

	CreatedAt  time.Time  `bun:"created_at"`
	StartedAt  *time.Time `bun:"started_at"`
	FinishedAt *time.Time `bun:"finished_at"`

	OutputBytes int64 `bun:"output_bytes"`
	Truncated   bool  `bun:"truncated"`
	LastSeq     int64 `bun:"last_seq"`
	LostBytes   int64 `bun:"output_lost_bytes"`

	CancelRequested bool       `bun:"cancel_requested"`
	Owner           string     `bun:"owner"`
	LeaseExpiresAt  *time.Time `bun:"lease_expires_at"`
	LeaseEpoch      int64      `bun:"lease_epoch"`

	TraceParent string `bun:"trace_parent"`
	TraceState  string `bun:"trace_state"`
}

// outputRow is one stored chunk of a command's output. Data is bytes, not a
// string, so output is kept byte for byte: a text column cannot hold NUL,
// and bun would replace invalid UTF-8 in a string literal.
type outputRow struct {
	bun.BaseModel `bun:"table:command_output,alias:o"`

	CommandID string    `bun:"command_id,pk"`
	Seq       int64     `bun:"seq,pk"`
	Stream    string    `bun:"stream"`
	Data      []byte    `bun:"data"`
	At        time.Time `bun:"at"`
}

// sqliteOutputRow is a stored chunk on SQLite, whose bytes are in Data or,
// if Segment is set, in a segment file (see segments), Size bytes from
// SegmentOffset. Rows made before segments hold their bytes.
type sqliteOutputRow struct {
	outputRow `bun:",extend"`

	Segment       *int64 `bun:"segment"`
	SegmentOffset *int64 `bun:"segment_offset"`
	Size          int64  `bun:"size"`
}

// newCommandRow converts c for storage, with status QUEUED. Times are stored
// in UTC with microsecond precision, and the timeout in whole milliseconds.
func newCommandRow(c *domain.Command) *commandRow {
	r := &commandRow{
		ID:              c.ID,
		ProjectID:       c.ProjectID,
		KeyID:           c.KeyID,
		Type:            string(c.Type),
		Argv:            c.Argv,
		Env:             c.Env,
		Workdir:         c.Workdir,
		Priority:        int(c.Priority),
		TimeoutMS:       c.Timeout.Milliseconds(),
		ClientToken:     c.ClientToken,
		AgentProtocol:   c.AgentProtocol,
		AgentSession:    c.AgentSession,
		Status:          string(c.Status),
		ExitCode:        c.ExitCode,
		Signal:          c.Signal,
		Reason:          c.Reason,
		CreatedAt:       storedTime(c.CreatedAt),
		StartedAt:       storedTimePtr(c.StartedAt),
		FinishedAt:      storedTimePtr(c.FinishedAt),
		OutputBytes:     c.OutputBytes,
		Truncated:       c.Truncated,
		LastSeq:         c.LastSeq,
		LostBytes:       c.LostBytes,
		CancelRequested: c.CancelRequested,
		Owner:           c.Owner,
		LeaseExpiresAt:  storedTimePtr(c.LeaseExpiresAt),
		LeaseEpoch:      c.LeaseEpoch,
		TraceParent:     c.TraceParent,
		TraceState:      c.TraceState,
	}
	// The columns are NOT NULL and must hold an array and an object.
	if r.Argv == nil {
		r.Argv = []string{}
	}
	if r.Env == nil {
		r.Env = map[string]string{}
	}
	return r
}

// command converts a stored row back. An empty environment comes back nil.
func (r *commandRow) command() *domain.Command {
	c := &domain.Command{
		ID:              r.ID,
		ProjectID:       r.ProjectID,
		KeyID:           r.KeyID,
		Type:            domain.CommandType(r.Type),
		Argv:            r.Argv,
		Workdir:         r.Workdir,
		Priority:        domain.Priority(r.Priority),
		Timeout:         time.Duration(r.TimeoutMS) * time.Millisecond,
		ClientToken:     r.ClientToken,
		AgentProtocol:   r.AgentProtocol,
		AgentSession:    r.AgentSession,
		Status:          domain.CommandStatus(r.Status),
		ExitCode:        r.ExitCode,
		Signal:          r.Signal,
		Reason:          r.Reason,
		CreatedAt:       storedTime(r.CreatedAt),
		StartedAt:       storedTimePtr(r.StartedAt),
		FinishedAt:      storedTimePtr(r.FinishedAt),
		OutputBytes:     r.OutputBytes,
		Truncated:       r.Truncated,
		LastSeq:         r.LastSeq,
		LostBytes:       r.LostBytes,
		CancelRequested: r.CancelRequested,
		Owner:           r.Owner,
		LeaseExpiresAt:  storedTimePtr(r.LeaseExpiresAt),
		LeaseEpoch:      r.LeaseEpoch,
		TraceParent:     r.TraceParent,
		TraceState:      r.TraceState,
	}
	if len(r.Env) > 0 {
		c.Env = r.Env
	}
	return c
}

func commandsOf(rows []*commandRow) []*domain.Command {
	out := make([]*domain.Command, 0, len(rows))
	for _, r := range rows {
		out = append(out, r.command())
	}
	return out
}

func newOutputRow(ch domain.OutputChunk) *outputRow {
	return &outputRow{
		CommandID: ch.CommandID,
		Seq:       ch.Seq,
		Stream:    string(ch.Stream),
		Data:      append([]byte{}, ch.Data...), // never nil: the column is NOT NULL
		At:        storedTime(ch.At),
	}
}

func (r *outputRow) chunk() domain.OutputChunk {
	return domain.OutputChunk{
		CommandID: r.CommandID,
		Seq:       r.Seq,
		Stream:    domain.Stream(r.Stream),
		Data:      string(r.Data),
		At:        storedTime(r.At),
	}
}
