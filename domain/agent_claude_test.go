package domain

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// lineField reads one field of a transcript's line as plain JSON, apart from
// the parser: the oracle for what differs between recordings.
func lineField(t *testing.T, b []byte, line int, field string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(bytes.Split(b, []byte("\n"))[line], &m); err != nil {
		t.Fatalf("line %d: %v", line, err)
	}
	return m[field]
}

// started is the AgentStarted of a transcript's first line, read apart from
// the parser.
func started(t *testing.T, b []byte) *AgentStarted {
	t.Helper()
	s := &AgentStarted{
		SessionID: lineField(t, b, 0, "session_id").(string),
		Model:     "claude-opus-5-5",
		Cwd:       lineField(t, b, 0, "cwd").(string),
	}
	for _, tool := range lineField(t, b, 0, "tools").([]any) {
		s.Tools = append(s.Tools, tool.(string))
	}
	return s
}

// finished fills what a transcript's result line (its last) says of time,
// cost and session into f.
func finished(t *testing.T, b []byte, f AgentFinished) *AgentFinished {
	t.Helper()
	last := bytes.Count(bytes.TrimSpace(b), []byte("\n"))
	f.SessionID = lineField(t, b, last, "session_id").(string)
	f.DurationMs = int64(lineField(t, b, last, "duration_ms").(float64))
	f.CostUSD = lineField(t, b, last, "total_cost_usd").(float64)
	return &f
}

func TestClaudeCode_Transcripts(t *testing.T) {
	files := transcripts(t)
	claude := NewClaudeCode()
	assistant := func(text string) *AgentMessage { return &AgentMessage{Role: AgentRoleAssistant, Text: text} }
	countInput := json.RawMessage(`{"command":"ls | wc -l","description":"Count the files"}`)
	tool := files["claude-tool.jsonl"]
	toolLines := bytes.Split(tool, []byte("\n"))

	tests := map[string][]AgentEvent{
		"claude-text.jsonl": {
			started(t, files["claude-text.jsonl"]),
			assistant("Hello from the fake model."),
			finished(t, files["claude-text.jsonl"], AgentFinished{Status: AgentSucceeded, Result: "Hello from the fake model.", InputTokens: 100, OutputTokens: 20, NumTurns: 1}),
		},
		"claude-tool.jsonl": {
			started(t, tool),
			assistant("I will count the files."),
			&AgentToolUse{ToolUseID: "toolu_count", Name: "Bash", Input: countInput},
			&AgentToolResult{ToolUseID: "toolu_count", Content: "3"},
			assistant("There are 3 files."),
			finished(t, tool, AgentFinished{Status: AgentSucceeded, Result: "There are 3 files.", InputTokens: 200, OutputTokens: 40, NumTurns: 2}),
		},
		"claude-resume.jsonl": {
			started(t, files["claude-resume.jsonl"]),
			assistant("We counted 3 files."),
			finished(t, files["claude-resume.jsonl"], AgentFinished{Status: AgentSucceeded, Result: "We counted 3 files.", InputTokens: 100, OutputTokens: 20, NumTurns: 1}),
		},
		"claude-tool-error.jsonl": {
			started(t, files["claude-tool-error.jsonl"]),
			&AgentToolUse{ToolUseID: "toolu_missing", Name: "Bash", Input: json.RawMessage(`{"command":"cat missing.txt","description":"Show missing.txt"}`)},
			&AgentToolResult{ToolUseID: "toolu_missing", IsError: true, Content: "Exit code 1\ncat: missing.txt: No such file or directory"},
			assistant("There is no missing.txt."),
			finished(t, files["claude-tool-error.jsonl"], AgentFinished{Status: AgentSucceeded, Result: "There is no missing.txt.", InputTokens: 200, OutputTokens: 40, NumTurns: 2}),
		},
		"claude-max-turns.jsonl": {
			started(t, files["claude-max-turns.jsonl"]),
			&AgentToolUse{ToolUseID: "toolu_again", Name: "Bash", Input: json.RawMessage(`{"command":"true","description":"Do nothing"}`)},
			&AgentToolResult{ToolUseID: "toolu_again", Content: "(Bash completed with no output)"},
			finished(t, files["claude-max-turns.jsonl"], AgentFinished{Status: AgentMaxTurns, Result: "Reached maximum number of turns (1)", InputTokens: 100, OutputTokens: 20, NumTurns: 2}),
		},
		"claude-edited-forward-compat.jsonl": {
			started(t, tool),
			&AgentRaw{Line: strings.Replace(string(toolLines[1]), `{"type":"assistant"`, `{"type":"tool_progress"`, 1)},
			assistant("I will count the files."),
			&AgentRaw{Line: string(bytes.Split(files["claude-edited-forward-compat.jsonl"], []byte("\n"))[2])},
			&AgentRaw{Line: string(toolLines[2][:len(toolLines[2])/2])},
			&AgentToolUse{ToolUseID: "toolu_count", Name: "Bash", Input: countInput},
			&AgentRaw{Line: "Warning: not JSON at all"},
			&AgentToolResult{ToolUseID: "toolu_count", Content: "3"},
			assistant("There are 3 files."),
			finished(t, tool, AgentFinished{Status: AgentSucceeded, Result: "There are 3 files.", InputTokens: 200, OutputTokens: 40, NumTurns: 2}),
		},
	}
	for name, b := range files {
		t.Run(name, func(t *testing.T) {
			want, ok := tests[name]
			if !ok {
				t.Fatalf("no expected events for testdata/agent/%s", name)
			}
			got := parseAll(claude, 0, b)
			wantEvents(t, got, want)
			if s := got[0].(*AgentStarted); !slices.Contains(s.Tools, "Bash") || len(s.Tools) < 5 {
				t.Errorf("tools %v: want Bash among many", s.Tools)
			}
		})
	}
	// The resumed run continues the session of the tool run.
	if a, b := started(t, tool).SessionID, started(t, files["claude-resume.jsonl"]).SessionID; a != b {
		t.Errorf("claude-resume.jsonl runs in session %s, want the session of claude-tool.jsonl, %s", b, a)
	}
}

func TestClaudeCode_DecodeLine(t *testing.T) {
	raw := func(line string) []AgentEvent { return []AgentEvent{&AgentRaw{Line: line}} }
	claude := NewClaudeCode()
	tests := []struct {
		name, line string
		want       []AgentEvent
	}{
		{"NotJSON", `hello`, raw(`hello`)},
		{"JSONArray", `[1,2]`, raw(`[1,2]`)},
		{"JSONString", `"assistant"`, raw(`"assistant"`)},
		{"Null", `null`, raw(`null`)},
		{"Truncated", `{"type":"result","subtype":"succ`, raw(`{"type":"result","subtype":"succ`)},
		{"WrongFieldType", `{"type":"result","num_turns":"two"}`, raw(`{"type":"result","num_turns":"two"}`)},
		{"UnknownType", `{"type":"stream_event","event":{}}`, raw(`{"type":"stream_event","event":{}}`)},
		{"SystemNotInit", `{"type":"system","subtype":"compact_boundary"}`, raw(`{"type":"system","subtype":"compact_boundary"}`)},
		{"NoMessage", `{"type":"assistant"}`, raw(`{"type":"assistant"}`)},
		{"NullMessage", `{"type":"assistant","message":null}`, raw(`{"type":"assistant","message":null}`)},
		{"UnknownRole", `{"type":"assistant","message":{"role":"tool","content":"x"}}`, raw(`{"type":"assistant","message":{"role":"tool","content":"x"}}`)},
		{"EmptyContent", `{"type":"assistant","message":{"role":"assistant","content":[]}}`, raw(`{"type":"assistant","message":{"role":"assistant","content":[]}}`)},
		{
			"StringContent", `{"type":"user","message":{"role":"user","content":"count the files"}}`,
			[]AgentEvent{&AgentMessage{Role: AgentRoleUser, Text: "count the files"}},
		},
		{
			"ThinkingThenText", `{"type":"assistant","message":{"role":"assistant","content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"Done."}]}}`,
			[]AgentEvent{
				&AgentMessage{Role: AgentRoleAssistant, Text: "Done."},
				&AgentRaw{Line: `{"type":"assistant","message":{"role":"assistant","content":[{"type":"thinking","thinking":"hm"},{"type":"text","text":"Done."}]}}`},
			},
		},
		{
			"ToolUseWithoutID", `{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","name":"Bash","input":{}}]}}`,
			raw(`{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","name":"Bash","input":{}}]}}`),
		},
		{
			"ToolResultTextBlocks", `{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}}`,
			[]AgentEvent{&AgentToolResult{ToolUseID: "t1", Content: "a\nb"}},
		},
		{
			"ToolResultImage", `{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"image","source":{}}]}]}}`,
			[]AgentEvent{
				&AgentToolResult{ToolUseID: "t1", IsError: true, Content: `[{"type":"image","source":{}}]`},
				&AgentRaw{Line: `{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":[{"type":"image","source":{}}]}]}}`},
			},
		},
		{
			"ToolResultNoContent", `{"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1"}]}}`,
			[]AgentEvent{&AgentToolResult{ToolUseID: "t1"}},
		},
		{
			"ResultOverBudget", `{"type":"result","subtype":"error_max_budget_usd","is_error":true,"total_cost_usd":1.5,"errors":["over","budget"],"session_id":"s"}`,
			[]AgentEvent{&AgentFinished{Status: AgentOverBudget, Result: "over\nbudget", CostUSD: 1.5, SessionID: "s"}},
		},
		{
			"ResultAPIError", `{"type":"result","subtype":"success","is_error":true,"result":"API Error: 500","usage":{"input_tokens":1,"output_tokens":2,"cache_read_input_tokens":3}}`,
			[]AgentEvent{&AgentFinished{Status: AgentFailed, Result: "API Error: 500", InputTokens: 1, OutputTokens: 2, CacheReadTokens: 3}},
		},
		{
			"ResultDuringExecution", `{"type":"result","subtype":"error_during_execution","is_error":true}`,
			[]AgentEvent{&AgentFinished{Status: AgentFailed}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantEvents(t, claude.DecodeLine([]byte(tt.line)), tt.want)
		})
	}
}

func TestClaudeCode_Argv(t *testing.T) {
	claude := NewClaudeCode("/opt/claude/bin/claude", "--bare")
	t.Run("OK", func(t *testing.T) {
		argv, err := NewClaudeCode().Argv(AgentRequest{Prompt: "count the files"})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"claude", "-p", "--output-format", "stream-json", "--verbose", "--", "count the files"}
		if !reflect.DeepEqual(argv, want) {
			t.Errorf("argv = %q, want %q", argv, want)
		}
	})
	t.Run("Everything", func(t *testing.T) {
		argv, err := claude.Argv(AgentRequest{
			Prompt:             "--help me\nplease",
			SessionID:          "79cb06ca-7def-4083-b4b6-16a004f25781",
			Model:              "sonnet[1m]",
			AllowedTools:       []string{"Bash(git log:*)", "Read"},
			DisallowedTools:    []string{"WebFetch"},
			PermissionMode:     "acceptEdits",
			MaxTurns:           7,
			MaxCostUSD:         0.25,
			AppendSystemPrompt: "-be brief",
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"/opt/claude/bin/claude", "--bare", "-p", "--output-format", "stream-json", "--verbose",
			"--resume=79cb06ca-7def-4083-b4b6-16a004f25781", "--model=sonnet[1m]",
			"--allowedTools", "Bash(git log:*)", "Read", "--disallowedTools", "WebFetch",
			"--permission-mode=acceptEdits", "--max-turns=7", "--max-budget-usd=0.25", "--append-system-prompt=-be brief",
			"--", "--help me\nplease",
		}
		if !reflect.DeepEqual(argv, want) {
			t.Errorf("argv =\n%q\nwant\n%q", argv, want)
		}
	})
	t.Run("ErrInvalid", func(t *testing.T) {
		ok := AgentRequest{Prompt: "p"}
		with := func(change func(r *AgentRequest)) AgentRequest {
			r := ok
			change(&r)
			return r
		}
		many := make([]string, MaxAgentTools+1)
		for i := range many {
			many[i] = "Read"
		}
		tests := []struct {
			field string
			req   AgentRequest
		}{
			{"prompt", with(func(r *AgentRequest) { r.Prompt = "" })},
			{"prompt", with(func(r *AgentRequest) { r.Prompt = " \n" })},
			{"prompt", with(func(r *AgentRequest) { r.Prompt = "a\x00b" })},
			{"prompt", with(func(r *AgentRequest) { r.Prompt = strings.Repeat("a", MaxAgentPromptBytes+1) })},
			{"sessionId", with(func(r *AgentRequest) { r.SessionID = "latest" })},
			{"sessionId", with(func(r *AgentRequest) { r.SessionID = "79cb06ca-7def-4083-b4b6-16a004f2578" })},
			{"model", with(func(r *AgentRequest) { r.Model = "-sonnet" })},
			{"model", with(func(r *AgentRequest) { r.Model = "son net" })},
			{"model", with(func(r *AgentRequest) { r.Model = strings.Repeat("m", MaxAgentModelBytes+1) })},
			{"allowedTools[1]", with(func(r *AgentRequest) { r.AllowedTools = []string{"Read", "Read Write"} })},
			{"allowedTools[0]", with(func(r *AgentRequest) { r.AllowedTools = []string{"Read,Write"} })},
			{"allowedTools[0]", with(func(r *AgentRequest) { r.AllowedTools = []string{"--dangerously-skip-permissions"} })},
			{"allowedTools[0]", with(func(r *AgentRequest) { r.AllowedTools = []string{"Bash(ls\n)"} })},
			{"allowedTools[0]", with(func(r *AgentRequest) { r.AllowedTools = []string{"Bash(ls"} })},
			{"allowedTools[0]", with(func(r *AgentRequest) { r.AllowedTools = []string{""} })},
			{"allowedTools", with(func(r *AgentRequest) { r.AllowedTools = many })},
			{"disallowedTools[0]", with(func(r *AgentRequest) {
				r.DisallowedTools = []string{"Bash(" + strings.Repeat("x", MaxAgentToolBytes) + ")"}
			})},
			{"permissionMode", with(func(r *AgentRequest) { r.PermissionMode = "yolo" })},
			{"permissionMode", with(func(r *AgentRequest) { r.PermissionMode = "default" })},
			{"maxTurns", with(func(r *AgentRequest) { r.MaxTurns = -1 })},
			{"maxTurns", with(func(r *AgentRequest) { r.MaxTurns = MaxAgentTurns + 1 })},
			{"maxCostUsd", with(func(r *AgentRequest) { r.MaxCostUSD = -0.5 })},
			{"maxCostUsd", with(func(r *AgentRequest) { r.MaxCostUSD = MaxAgentCostUSD + 1 })},
			{"maxCostUsd", with(func(r *AgentRequest) { r.MaxCostUSD = math.NaN() })},
			{"maxCostUsd", with(func(r *AgentRequest) { r.MaxCostUSD = math.Inf(1) })},
			{"appendSystemPrompt", with(func(r *AgentRequest) { r.AppendSystemPrompt = "\x1b[31m" })},
			{"appendSystemPrompt", with(func(r *AgentRequest) { r.AppendSystemPrompt = strings.Repeat("s", MaxAgentSystemPromptBytes+1) })},
			{"appendSystemPrompt", with(func(r *AgentRequest) { r.AppendSystemPrompt = "\xff" })},
		}
		for _, tt := range tests {
			t.Run(tt.field, func(t *testing.T) {
				argv, err := claude.Argv(tt.req)
				if argv != nil {
					t.Errorf("argv = %q, want none", argv)
				}
				wantInvalid(t, err, tt.field)
			})
		}
	})
}

func FuzzValidateAgentRequest(f *testing.F) {
	f.Add("count the files", "79cb06ca-7def-4083-b4b6-16a004f25781", "sonnet", "Bash(git log:*)", "plan", 3, "be brief")
	f.Add("-p", "", "", "Read,Write", "", 0, "")
	claude := NewClaudeCode()
	f.Fuzz(func(t *testing.T, prompt, session, model, tool, mode string, turns int, system string) {
		req := AgentRequest{Prompt: prompt, SessionID: session, Model: model, AllowedTools: []string{tool}, PermissionMode: mode, MaxTurns: turns, AppendSystemPrompt: system}
		argv, err := claude.Argv(req)
		if err != nil {
			if ErrorCode(err) != EINVALID || argv != nil {
				t.Fatalf("Argv = %q, %v: want nil and EINVALID", argv, err)
			}
			return
		}
		// Valid input is passed on as it is, and only the prompt follows "--".
		if argv[len(argv)-2] != "--" || argv[len(argv)-1] != prompt {
			t.Fatalf("argv %q does not end with -- and the prompt", argv)
		}
		for _, a := range argv[1 : len(argv)-2] {
			if a == "--" {
				t.Fatalf("argv %q has -- before its end", argv)
			}
		}
		if !slices.Contains(argv, tool) {
			t.Fatalf("argv %q lacks the tool %q", argv, tool)
		}
	})
}
