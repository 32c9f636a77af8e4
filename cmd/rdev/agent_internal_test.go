package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/client"
)

func TestAgentOptions_Parse(t *testing.T) {
	parse := func(args ...string) (agentOptions, error) {
		var o agentOptions
		err := o.parse(args, cli{getenv: func(string) string { return "" }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
		return o, err
	}
	t.Run("OK", func(t *testing.T) {
		o, err := parse("--model", "m", "demo", "count the files", "--resume", "0b0e4a8e-5a51-4d2b-9d4b-1a2b3c4d5e6f",
			"--allowed-tools", "Bash, Read", "--max-turns", "3", "--env", "A=b=c", "--json")
		if err != nil {
			t.Fatal(err)
		}
		in := o.in
		if in.ProjectID != "demo" || in.Prompt != "count the files" || in.Model != "m" || in.SessionID == "" || in.MaxTurns != 3 ||
			strings.Join(in.AllowedTools, "|") != "Bash|Read" || len(in.Env) != 1 || in.Env[0].Value != "b=c" || !o.json ||
			in.ClientToken == "" || in.Priority != client.PriorityNormal {
			t.Errorf("parsed %+v", o)
		}
	})
	t.Run("PromptWithDashes", func(t *testing.T) {
		o, err := parse("demo", "--", "--help me")
		if err != nil || o.in.Prompt != "--help me" {
			t.Errorf("parsed %+v, %v", o.in, err)
		}
	})
	for name, args := range map[string][]string{
		"ErrNoPrompt":   {"demo"},
		"ErrThreeArgs":  {"demo", "a", "b"},
		"ErrMaxTurns":   {"--max-turns", "-1", "demo", "a"},
		"ErrPriority":   {"--priority", "soon", "demo", "a"},
		"ErrEnvNoValue": {"--env", "A", "demo", "a"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := parse(args...); err == nil {
				t.Errorf("rdev agent %q parsed", args)
			}
		})
	}
}

func TestTextRenderer(t *testing.T) {
	var out, note bytes.Buffer
	r := &textRenderer{out: &out, note: &note}
	exit := 0
	for _, e := range []*client.AgentEvent{
		{Type: client.AgentStarted, SessionID: "s1", Model: "m", Cwd: "/p"},
		{Type: client.AgentMessage, Role: "USER", Text: "not shown"},
		{Type: client.AgentMessage, Role: "ASSISTANT", Text: "Counting.\n"},
		{Type: client.AgentToolUse, Name: "Bash", Input: `{"command":"ls | wc -l","description":"Count"}`},
		{Type: client.AgentToolResult, Content: "3\n"},
		{Type: client.AgentToolUse, Name: "Other", Input: `{"x": [1, 2]}`},
		{Type: client.AgentToolResult, IsError: true, Content: "line 1\nline 2\nline 3"},
		{Type: client.AgentRaw, Line: `{"type":"new"}`},
		{Type: client.AgentFinished, Status: "MAX_TURNS", Result: "Reached the maximum number of turns", CostUSD: 0.5, NumTurns: 1, DurationMs: 1500, SessionID: "s1"},
		{Type: client.AgentRunEnded, CommandStatus: client.StatusFailed, ExitCode: &exit},
	} {
		if err := r.event(e); err != nil {
			t.Fatal(err)
		}
	}
	want := "● session s1 · m · /p\nCounting.\n→ Bash ls | wc -l\n  ← 3\n→ Other {\"x\":[1,2]}\n  ✗ line 1 (+2 lines)\n" +
		"✗ MAX_TURNS · $0.5000 · 0 in / 0 out tokens (0 cached) · 1 turns · 1.5s · session s1\n  Reached the maximum number of turns\n"
	if out.String() != want {
		t.Errorf("rendered\n%s\nwant\n%s", out.String(), want)
	}
	if !strings.Contains(note.String(), `agent printed: {"type":"new"}`) || !strings.Contains(note.String(), "ended FAILED") {
		t.Errorf("notes %q", note.String())
	}
}

func TestAgentExitStatus(t *testing.T) {
	zero, two := 0, 2
	for _, tt := range []struct {
		f     client.Finished
		agent string
		want  int
	}{
		{client.Finished{Status: client.StatusSucceeded, ExitCode: &zero}, "SUCCEEDED", 0},
		{client.Finished{Status: client.StatusSucceeded, ExitCode: &zero}, "MAX_TURNS", 1},
		{client.Finished{Status: client.StatusSucceeded, ExitCode: &zero}, "", 1},
		{client.Finished{Status: client.StatusFailed, ExitCode: &two}, "FAILED", 2},
		{client.Finished{Status: client.StatusCancelled}, "", 130},
	} {
		if got := agentExitStatus(&tt.f, tt.agent); got != tt.want {
			t.Errorf("agentExitStatus(%+v, %q) = %d, want %d", tt.f, tt.agent, got, tt.want)
		}
	}
}
