package client

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"time"
)

// AgentInput is what to ask an agent, where and how. Only ProjectID and
// Prompt are required.
type AgentInput struct {
	ProjectID string
	Prompt    string
	// SessionID continues that session of the agent (AgentRun.SessionID of
	// an earlier run in the same project).
	SessionID       string
	Model           string
	AllowedTools    []string
	DisallowedTools []string
	PermissionMode  string
	MaxTurns        int
	// MaxCostUSD, if above 0, is what the run may spend on model calls:
	// past it the run ends OVER_BUDGET.
	MaxCostUSD         float64
	AppendSystemPrompt string
	Env                []EnvVar
	Priority           Priority
	// Timeout kills the run after this long, rounded up to whole seconds;
	// 0 uses the server's default.
	Timeout time.Duration
	// ClientToken is the idempotency token, as in ExecuteInput; "" makes a
	// random one.
	ClientToken string
}

// vars is the RunAgentInput.
func (in AgentInput) vars() map[string]any {
	v := map[string]any{"projectId": in.ProjectID, "prompt": in.Prompt, "clientToken": in.ClientToken}
	for name, s := range map[string]string{
		"sessionId": in.SessionID, "model": in.Model, "permissionMode": in.PermissionMode,
		"appendSystemPrompt": in.AppendSystemPrompt, "priority": string(in.Priority),
	} {
		if s != "" {
			v[name] = s
		}
	}
	if in.AllowedTools != nil {
		v["allowedTools"] = in.AllowedTools
	}
	if in.DisallowedTools != nil {
		v["disallowedTools"] = in.DisallowedTools
	}
	if in.MaxTurns > 0 {
		v["maxTurns"] = in.MaxTurns
	}
	if in.MaxCostUSD > 0 {
		v["maxCostUsd"] = in.MaxCostUSD
	}
	if in.Env != nil {
		v["env"] = in.Env
	}
	if in.Timeout > 0 {
		v["timeoutSeconds"] = int((in.Timeout + time.Second - 1) / time.Second)
	}
	return v
}

// AgentRun is an agent run as the server reports it.
type AgentRun struct {
	ID       string `json:"id"`
	Protocol string `json:"protocol"`
	Status   Status `json:"status"`
	// SessionID is "" until the agent started.
	SessionID string `json:"sessionId"`
	// Finished is the agent's own summary; nil until it printed one.
	Finished *AgentEvent `json:"finished"`
	Command  Command     `json:"command"`
}

const (
	agentRunFields   = `id protocol status sessionId finished { ` + agentFinishedFields + ` } command { ` + commandFields + ` }`
	runAgentMutation = `mutation($in: RunAgentInput!) { runAgent(input: $in) { agentRun { ` + agentRunFields + ` } } }`
	agentRunQuery    = `query($id: ID!) { agentRun(id: $id) { ` + agentRunFields + ` } }`

	agentFinishedFields = `seq index status result costUsd inputTokens outputTokens cacheReadTokens numTurns durationMs sessionId`
	// The run's end is named commandStatus: the agent's and the command's
	// statuses are different enums, which one selection cannot merge.
	agentEventsSubscription = `subscription($id: ID!, $after: Int) {
  agentEvents(runId: $id, afterSeq: $after) {
    __typename
    ... on AgentStarted { seq index sessionId model tools cwd }
    ... on AgentMessage { seq index role text }
    ... on AgentToolUse { seq index toolUseId name input }
    ... on AgentToolResult { seq index toolUseId isError content }
    ... on AgentFinished { ` + agentFinishedFields + ` }
    ... on AgentRaw { seq index line }
    ... on AgentRunEnded { seq index commandStatus: status exitCode command { reason signal durationMs } }
  }
}`
)

// RunAgent queues an agent run and returns it. A request that fails on the
// way is sent again with the same token, so the run is queued once.
// Errors: an *Error with INVALID_INPUT (naming the option), NOT_FOUND,
// CONFLICT, FORBIDDEN, RATE_LIMITED, UNAUTHENTICATED.
func (c *Client) RunAgent(ctx context.Context, in AgentInput) (*AgentRun, error) {
	if in.ClientToken == "" {
		in.ClientToken = rand.Text()
	}
	var r struct {
		RunAgent struct {
			AgentRun AgentRun `json:"agentRun"`
		} `json:"runAgent"`
	}
	if err := c.do(ctx, runAgentMutation, map[string]any{"in": in.vars()}, &r); err != nil {
		return nil, err
	}
	return &r.RunAgent.AgentRun, nil
}

// AgentRun returns an agent run as it is now. Errors: an *Error with
// NOT_FOUND.
func (c *Client) AgentRun(ctx context.Context, id string) (*AgentRun, error) {
	var r struct {
		AgentRun *AgentRun `json:"agentRun"`
	}
	if err := c.do(ctx, agentRunQuery, map[string]any{"id": id}, &r); err != nil {
		return nil, err
	}
	if r.AgentRun == nil {
		return nil, &Error{Code: "NOT_FOUND", Message: "agent run " + id + " not found"}
	}
	return r.AgentRun, nil
}

// AgentEvent is one event of an agent run; Type (the GraphQL type name)
// says which fields are set. Raw is the event as the server sent it.
type AgentEvent struct {
	Type  string `json:"__typename"`
	Seq   int    `json:"seq"`
	Index int    `json:"index"`
	// AgentStarted (and SessionID in AgentFinished)
	SessionID string   `json:"sessionId"`
	Model     string   `json:"model"`
	Tools     []string `json:"tools"`
	Cwd       string   `json:"cwd"`
	// AgentMessage
	Role string `json:"role"`
	Text string `json:"text"`
	// AgentToolUse (Input is JSON text) and AgentToolResult
	ToolUseID string `json:"toolUseId"`
	Name      string `json:"name"`
	Input     string `json:"input"`
	IsError   bool   `json:"isError"`
	Content   string `json:"content"`
	// AgentFinished
	Status          string  `json:"status"`
	Result          string  `json:"result"`
	CostUSD         float64 `json:"costUsd"`
	InputTokens     int64   `json:"inputTokens"`
	OutputTokens    int64   `json:"outputTokens"`
	CacheReadTokens int64   `json:"cacheReadTokens"`
	NumTurns        int     `json:"numTurns"`
	DurationMs      int64   `json:"durationMs"`
	// AgentRaw
	Line string `json:"line"`
	// AgentRunEnded: how the command ended.
	CommandStatus Status `json:"commandStatus"`
	ExitCode      *int   `json:"exitCode"`
	Command       *struct {
		Reason     *string `json:"reason"`
		Signal     *string `json:"signal"`
		DurationMs *int    `json:"durationMs"`
	} `json:"command"`

	Raw json.RawMessage `json:"-"`
}

// The types of agent events.
const (
	AgentStarted    = "AgentStarted"
	AgentMessage    = "AgentMessage"
	AgentToolUse    = "AgentToolUse"
	AgentToolResult = "AgentToolResult"
	AgentFinished   = "AgentFinished"
	AgentRaw        = "AgentRaw"
	AgentRunEnded   = "AgentRunEnded"
)

// Ended returns how the run's command ended, for an AgentRunEnded event.
func (e *AgentEvent) Ended() *Finished {
	f := &Finished{Status: e.CommandStatus, ExitCode: e.ExitCode, LastSeq: e.Seq}
	if e.Command != nil {
		f.Reason, f.Signal = deref(e.Command.Reason), deref(e.Command.Signal)
		if e.Command.DurationMs != nil {
			f.DurationMs = *e.Command.DurationMs
		}
	}
	return f
}

// FollowAgent streams an agent run's events, stored and then live, to
// onEvent, each exactly once and in order however often the connection
// drops, until the AgentRunEnded event, which it delivers last and
// returns. afterSeq skips the events of chunks up to it (0: all). Errors
// are Tail's, or onEvent's.
func (c *Client) FollowAgent(ctx context.Context, runID string, afterSeq int, onEvent func(*AgentEvent) error) (*AgentEvent, error) {
	f := &agentFollow{afterSeq: afterSeq, lastSeq: afterSeq, lastIndex: -1, on: onEvent}
	vars := func() map[string]any {
		// Ask again for the chunk of the last event delivered: its other
		// events may not have arrived; those that did are skipped.
		after := f.afterSeq
		if f.lastIndex >= 0 {
			after = f.lastSeq - 1
		}
		return map[string]any{"id": runID, "after": after}
	}
	if err := c.subscribe(ctx, agentEventsSubscription, vars, f.event); err != nil {
		return nil, err
	}
	return f.end, nil
}

// agentFollow is the state of one FollowAgent.
type agentFollow struct {
	afterSeq int
	// lastSeq and lastIndex are where the last event delivered came from
	// (lastIndex -1 before the first).
	lastSeq, lastIndex int
	on                 func(*AgentEvent) error
	end                *AgentEvent
}

func (f *agentFollow) event(data json.RawMessage) (done bool, err error) {
	var d struct {
		AgentEvents json.RawMessage `json:"agentEvents"`
	}
	var e AgentEvent
	if err := json.Unmarshal(data, &d); err != nil || json.Unmarshal(d.AgentEvents, &e) != nil || e.Type == "" {
		return false, fmt.Errorf("bad agentEvents event from the server: %s", data)
	}
	e.Raw = d.AgentEvents
	if e.Type != AgentRunEnded && (e.Seq < f.lastSeq || (e.Seq == f.lastSeq && e.Index <= f.lastIndex)) {
		return false, nil // delivered before the connection dropped
	}
	if err := f.on(&e); err != nil {
		return false, err
	}
	if e.Type == AgentRunEnded {
		f.end = &e
		return true, nil
	}
	f.lastSeq, f.lastIndex = e.Seq, e.Index
	return false, nil
}
