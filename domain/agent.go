package domain

import (
	"encoding/json"
	"slices"
	"strings"
)

// An agent run is a command that runs an AI coding agent's CLI (Claude Code
// first) in a project. What the CLI prints is JSON lines in its own format;
// an AgentProtocol turns it into the typed events below, which are the same
// whatever agent ran.

// AgentEvent is one typed event of an agent run: *AgentStarted,
// *AgentMessage, *AgentToolUse, *AgentToolResult, *AgentFinished or
// *AgentRaw. The set is closed (agentEvent is unexported), so a switch over
// it can name every case.
type AgentEvent interface {
	agentEvent()
}

// AgentStarted says the agent is up: the session it runs in (which a later
// run can resume), its model, the tools it may use and its working
// directory.
type AgentStarted struct {
	SessionID string
	Model     string
	Tools     []string
	Cwd       string
}

// AgentRole says who wrote an AgentMessage.
type AgentRole string

// The roles of messages.
const (
	// AgentRoleAssistant is the model's own text.
	AgentRoleAssistant AgentRole = "ASSISTANT"
	// AgentRoleUser is text sent to the model as the user (the prompt, when
	// the CLI echoes it).
	AgentRoleUser AgentRole = "USER"
)

// AgentMessage is text from the model (or, echoed, to it).
type AgentMessage struct {
	Role AgentRole
	Text string
}

// AgentToolUse is the model calling a tool: its call ID (which the result
// names), the tool's name, and its input as the model wrote it (JSON).
type AgentToolUse struct {
	ToolUseID string
	Name      string
	Input     json.RawMessage
}

// AgentToolResult is what a tool call gave back to the model. Content is its
// text; content that is not text (an image) is kept as its JSON.
type AgentToolResult struct {
	ToolUseID string
	IsError   bool
	Content   string
}

// AgentStatus says how an agent run ended, in the agent's own judgement.
type AgentStatus string

// The ends of agent runs.
const (
	// AgentSucceeded: the agent finished its answer.
	AgentSucceeded AgentStatus = "SUCCEEDED"
	// AgentFailed: the agent reported an error (the model API failed, a
	// tool loop broke, ...); Result says what.
	AgentFailed AgentStatus = "FAILED"
	// AgentMaxTurns: it stopped at its limit of turns before finishing.
	AgentMaxTurns AgentStatus = "MAX_TURNS"
	// AgentOverBudget: it stopped at its own limit of spending.
	AgentOverBudget AgentStatus = "OVER_BUDGET"
)

// AgentFinished is the agent's own summary at its end: how it ended, its
// final answer (or error), what the run cost in US dollars and tokens, how
// many turns and how long it took, and the session it ran in.
type AgentFinished struct {
	Status          AgentStatus
	Result          string
	CostUSD         float64
	InputTokens     int64
	OutputTokens    int64
	CacheReadTokens int64
	NumTurns        int
	DurationMs      int64
	SessionID       string
}

// AgentRaw is a line of output that the protocol did not understand, or did
// not understand entirely: not JSON, JSON it cannot read, an event type or a
// content block it does not know (from a newer CLI). It is never dropped, so
// a client can still show it. Line is the line's bytes, without its line
// end, as a string that may not be valid UTF-8; a line longer than the
// parser's bound comes as several AgentRaw of consecutive pieces.
type AgentRaw struct {
	Line string
}

func (*AgentStarted) agentEvent()    {}
func (*AgentMessage) agentEvent()    {}
func (*AgentToolUse) agentEvent()    {}
func (*AgentToolResult) agentEvent() {}
func (*AgentFinished) agentEvent()   {}
func (*AgentRaw) agentEvent()        {}

// AgentProtocol is what rdev knows of one agent CLI: how to start a run and
// how to read what it prints. Claude Code (--output-format stream-json) is
// the first; a CLI that prints JSON lines (Codex's `exec --json`, Gemini's
// stream-json) fits the same port. Implementations are safe for concurrent
// use.
type AgentProtocol interface {
	// Name is the protocol's name in AgentProtocols, e.g. "claude-code".
	Name() string
	// Argv returns the command line of a run of r. It returns EINVALID,
	// naming the field, for input it cannot pass on safely.
	Argv(r AgentRequest) ([]string, error)
	// DecodeLine turns one line of the CLI's standard output (without its
	// line end, never only white space) into events. It depends on nothing
	// but the line, so events can be derived again from stored output
	// starting at any line. It returns at least one event, an *AgentRaw
	// holding the line whenever it does not understand all of it, and must
	// not keep line.
	DecodeLine(line []byte) []AgentEvent
}

// AgentRequest is what a run of an agent is asked to do. Every field but
// Prompt is optional; each protocol validates what it passes on.
type AgentRequest struct {
	// Prompt is the task, as the user wrote it.
	Prompt string
	// SessionID, if set, continues that conversation of the agent.
	SessionID string
	// Model names the model (the CLI's default if "").
	Model string
	// AllowedTools are tools (or tool rules such as "Bash(git log:*)") the
	// agent may use without asking; DisallowedTools it may not use at all.
	AllowedTools    []string
	DisallowedTools []string
	// PermissionMode is the agent's own permission mode, in its own words.
	PermissionMode string
	// MaxTurns bounds the model turns of the run; 0 means the CLI's default.
	MaxTurns int
	// AppendSystemPrompt is added to the end of the agent's system prompt.
	AppendSystemPrompt string
	// MaxCostUSD, if above 0, is what the run may spend on model calls:
	// the agent stops once its cost passes it and the run ends
	// OVER_BUDGET.
	MaxCostUSD float64
}

// AgentProtocols is a registry of protocols by name. The zero value is
// empty; it is not safe to Register concurrently with lookups, so fill it
// at start-up.
type AgentProtocols struct {
	byName map[string]AgentProtocol
}

// NewAgentProtocols returns a registry holding ps. It panics if two share a
// name, a wiring mistake.
func NewAgentProtocols(ps ...AgentProtocol) *AgentProtocols {
	r := &AgentProtocols{}
	for _, p := range ps {
		r.Register(p)
	}
	return r
}

// Register adds p. It panics if a protocol of the same name is there, a
// wiring mistake.
func (r *AgentProtocols) Register(p AgentProtocol) {
	if r.byName == nil {
		r.byName = map[string]AgentProtocol{}
	}
	if _, dup := r.byName[p.Name()]; dup {
		panic("domain: agent protocol " + p.Name() + " registered twice")
	}
	r.byName[p.Name()] = p
}

// Lookup returns the protocol named name, or EINVALID naming the known ones.
func (r *AgentProtocols) Lookup(name string) (AgentProtocol, error) {
	if p, ok := r.byName[name]; ok {
		return p, nil
	}
	return nil, Errorf(EINVALID, "agent: unknown agent protocol %q (known: %s)", Clip(name), strings.Join(r.Names(), ", "))
}

// Names returns the names of the registered protocols, sorted.
func (r *AgentProtocols) Names() []string {
	names := make([]string, 0, len(r.byName))
	for n := range r.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
