package domain

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// ClaudeCodeProtocol is the name of the Claude Code protocol.
const ClaudeCodeProtocol = "claude-code"

// ClaudeCode is the AgentProtocol of Anthropic's Claude Code CLI in print
// mode with `--output-format stream-json --verbose`: one JSON object a line,
// of type "system" (subtype "init" starts the run), "assistant" and "user"
// (a message each, whose content blocks are text, tool_use and
// tool_result), and "result" (the end, with cost and usage). The format was
// read from what Claude Code 2.1.328 prints (domain/testdata/agent).
type ClaudeCode struct {
	command []string
}

var _ AgentProtocol = (*ClaudeCode)(nil)

// NewClaudeCode returns the protocol of the CLI started by command (program
// and leading arguments; "claude" if none).
func NewClaudeCode(command ...string) *ClaudeCode {
	if len(command) == 0 {
		command = []string{"claude"}
	}
	return &ClaudeCode{command: append([]string(nil), command...)}
}

// Name returns ClaudeCodeProtocol.
func (*ClaudeCode) Name() string { return ClaudeCodeProtocol }

// ClaudePermissionModes are the values of Claude Code's --permission-mode
// (version 2.1.328).
var ClaudePermissionModes = []string{"acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan"}

// Argv returns the command line of a run of r:
//
//	claude -p --output-format stream-json --verbose [--resume=S] [--model=M]
//	  [--allowedTools T...] [--disallowedTools T...] [--permission-mode=P]
//	  [--max-turns=N] [--max-budget-usd=USD] [--append-system-prompt=TEXT]
//	  -- PROMPT
//
// Values are joined to their options with "=" and the prompt follows "--",
// so no input, whatever it starts with, is read as an option; the tool
// lists, which take several arguments, are always followed by an option.
// It returns EINVALID as ValidateAgentRequest does, and for a permission
// mode not in ClaudePermissionModes.
func (c *ClaudeCode) Argv(r AgentRequest) ([]string, error) {
	if err := ValidateAgentRequest(r); err != nil {
		return nil, err
	}
	if r.PermissionMode != "" && !slices.Contains(ClaudePermissionModes, r.PermissionMode) {
		return nil, Errorf(EINVALID, "permissionMode: %q is not one of %s", Clip(r.PermissionMode), strings.Join(ClaudePermissionModes, ", "))
	}
	argv := append([]string(nil), c.command...)
	argv = append(argv, "-p", "--output-format", "stream-json", "--verbose")
	opt := func(name, value string) {
		if value != "" {
			argv = append(argv, name+"="+value)
		}
	}
	opt("--resume", r.SessionID)
	opt("--model", r.Model)
	if len(r.AllowedTools) > 0 {
		argv = append(append(argv, "--allowedTools"), r.AllowedTools...)
	}
	if len(r.DisallowedTools) > 0 {
		argv = append(append(argv, "--disallowedTools"), r.DisallowedTools...)
	}
	opt("--permission-mode", r.PermissionMode)
	if r.MaxTurns > 0 {
		opt("--max-turns", strconv.Itoa(r.MaxTurns))
	}
	if r.MaxCostUSD > 0 {
		opt("--max-budget-usd", strconv.FormatFloat(r.MaxCostUSD, 'f', -1, 64))
	}
	opt("--append-system-prompt", r.AppendSystemPrompt)
	return append(argv, "--", r.Prompt), nil
}

// claudeLine is the part of a line every type shares.
type claudeLine struct {
	Type    string `json:"type"`
	Subtype string `json:"subtype"`
}

// DecodeLine implements AgentProtocol.
func (*ClaudeCode) DecodeLine(line []byte) []AgentEvent {
	var head claudeLine
	if !isJSONObject(line) || json.Unmarshal(line, &head) != nil {
		return rawLine(line)
	}
	var events []AgentEvent
	complete := false
	switch {
	case head.Type == "system" && head.Subtype == "init":
		events, complete = decodeClaudeInit(line)
	case head.Type == "assistant" || head.Type == "user":
		events, complete = decodeClaudeMessage(line)
	case head.Type == "result":
		events, complete = decodeClaudeResult(line)
	}
	if !complete || len(events) == 0 {
		events = append(events, &AgentRaw{Line: string(line)})
	}
	return events
}

func rawLine(line []byte) []AgentEvent {
	return []AgentEvent{&AgentRaw{Line: string(line)}}
}

// isJSONObject reports whether line, trimmed, looks like a JSON object, so
// that a bare string or number is not read as an empty line of some type.
func isJSONObject(line []byte) bool {
	t := bytes.TrimSpace(line)
	return len(t) >= 2 && t[0] == '{' && t[len(t)-1] == '}'
}

func decodeClaudeInit(line []byte) ([]AgentEvent, bool) {
	var v struct {
		SessionID string   `json:"session_id"`
		Model     string   `json:"model"`
		Tools     []string `json:"tools"`
		Cwd       string   `json:"cwd"`
	}
	if json.Unmarshal(line, &v) != nil {
		return nil, false
	}
	return []AgentEvent{&AgentStarted{SessionID: v.SessionID, Model: v.Model, Tools: v.Tools, Cwd: v.Cwd}}, true
}

// claudeBlock is one content block of a message.
type claudeBlock struct {
	Type string `json:"type"`
	// text
	Text string `json:"text"`
	// tool_use
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
	// tool_result
	ToolUseID string          `json:"tool_use_id"`
	Content   json.RawMessage `json:"content"`
	IsError   bool            `json:"is_error"`
}

// decodeClaudeMessage reads an assistant or user line. Its message's content
// is a string or a list of blocks; it reports false if it held a block of a
// type it does not know (thinking, an image, something newer), or was not
// what it should be.
func decodeClaudeMessage(line []byte) ([]AgentEvent, bool) {
	var v struct {
		Message *struct {
			Role    string          `json:"role"`
			Content json.RawMessage `json:"content"`
		} `json:"message"`
	}
	if json.Unmarshal(line, &v) != nil || v.Message == nil {
		return nil, false
	}
	role := AgentRoleAssistant
	switch v.Message.Role {
	case "assistant":
	case "user":
		role = AgentRoleUser
	default:
		return nil, false
	}
	var text string
	if json.Unmarshal(v.Message.Content, &text) == nil {
		return []AgentEvent{&AgentMessage{Role: role, Text: text}}, true
	}
	var blocks []claudeBlock
	if json.Unmarshal(v.Message.Content, &blocks) != nil {
		return nil, false
	}
	events := make([]AgentEvent, 0, len(blocks))
	complete := true
	for _, b := range blocks {
		switch {
		case b.Type == "text":
			events = append(events, &AgentMessage{Role: role, Text: b.Text})
		case b.Type == "tool_use" && b.ID != "" && b.Name != "":
			events = append(events, &AgentToolUse{ToolUseID: b.ID, Name: b.Name, Input: b.Input})
		case b.Type == "tool_result" && b.ToolUseID != "":
			content, ok := toolResultText(b.Content)
			complete = complete && ok
			events = append(events, &AgentToolResult{ToolUseID: b.ToolUseID, IsError: b.IsError, Content: content})
		default:
			complete = false
		}
	}
	return events, complete
}

// toolResultText returns a tool result's content as text: a string as it
// is, a list of text blocks joined by newlines, and anything else as its
// JSON (then ok is false, the caller also sends the line as it was).
func toolResultText(content json.RawMessage) (string, bool) {
	if len(content) == 0 || string(content) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(content, &s) == nil {
		return s, true
	}
	var blocks []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if json.Unmarshal(content, &blocks) == nil {
		texts := make([]string, 0, len(blocks))
		for _, b := range blocks {
			if b.Type != "text" || b.Text == nil {
				return string(content), false
			}
			texts = append(texts, *b.Text)
		}
		return strings.Join(texts, "\n"), true
	}
	return string(content), false
}

func decodeClaudeResult(line []byte) ([]AgentEvent, bool) {
	var v struct {
		Subtype      string   `json:"subtype"`
		IsError      bool     `json:"is_error"`
		Result       string   `json:"result"`
		Errors       []string `json:"errors"`
		TotalCostUSD float64  `json:"total_cost_usd"`
		NumTurns     int      `json:"num_turns"`
		DurationMs   int64    `json:"duration_ms"`
		SessionID    string   `json:"session_id"`
		Usage        struct {
			InputTokens          int64 `json:"input_tokens"`
			OutputTokens         int64 `json:"output_tokens"`
			CacheReadInputTokens int64 `json:"cache_read_input_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(line, &v) != nil {
		return nil, false
	}
	result := v.Result
	if result == "" {
		result = strings.Join(v.Errors, "\n")
	}
	return []AgentEvent{&AgentFinished{
		Status:          claudeStatus(v.Subtype, v.IsError),
		Result:          result,
		CostUSD:         v.TotalCostUSD,
		InputTokens:     v.Usage.InputTokens,
		OutputTokens:    v.Usage.OutputTokens,
		CacheReadTokens: v.Usage.CacheReadInputTokens,
		NumTurns:        v.NumTurns,
		DurationMs:      v.DurationMs,
		SessionID:       v.SessionID,
	}}, true
}

// claudeStatus maps a result's subtype and is_error to a status. "success"
// with is_error is what Claude Code reports when the model API failed.
func claudeStatus(subtype string, isError bool) AgentStatus {
	switch subtype {
	case "success":
		if isError {
			return AgentFailed
		}
		return AgentSucceeded
	case "error_max_turns":
		return AgentMaxTurns
	case "error_max_budget_usd":
		return AgentOverBudget
	}
	return AgentFailed
}
