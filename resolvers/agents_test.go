package resolvers

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph/model"
)

func TestAgentEvent(t *testing.T) {
	exit := 1
	end := &domain.Command{ID: "c1", Status: domain.CommandFailed, ExitCode: &exit, LastSeq: 9}
	for name, tt := range map[string]struct {
		in   domain.AgentEventItem
		want model.AgentEvent
	}{
		"Started": {domain.AgentEventItem{Seq: 1, Event: &domain.AgentStarted{SessionID: "s", Model: "m", Cwd: "/p"}},
			// No tools is an empty list: the field is non-null.
			&model.AgentStarted{Seq: 1, SessionID: "s", Model: "m", Tools: []string{}, Cwd: "/p"}},
		"Message": {domain.AgentEventItem{Seq: 2, Index: 1, Event: &domain.AgentMessage{Role: domain.AgentRoleAssistant, Text: "hi"}},
			&model.AgentMessage{Seq: 2, Index: 1, Role: domain.AgentRoleAssistant, Text: "hi"}},
		"ToolUse": {domain.AgentEventItem{Seq: 3, Event: &domain.AgentToolUse{ToolUseID: "t", Name: "Bash", Input: json.RawMessage(`{"command":"ls"}`)}},
			&model.AgentToolUse{Seq: 3, ToolUseID: "t", Name: "Bash", Input: `{"command":"ls"}`}},
		"ToolUseNoInput": {domain.AgentEventItem{Seq: 3, Event: &domain.AgentToolUse{ToolUseID: "t", Name: "Bash"}},
			&model.AgentToolUse{Seq: 3, ToolUseID: "t", Name: "Bash", Input: "null"}},
		"ToolResult": {domain.AgentEventItem{Seq: 4, Event: &domain.AgentToolResult{ToolUseID: "t", IsError: true, Content: "no"}},
			&model.AgentToolResult{Seq: 4, ToolUseID: "t", IsError: true, Content: "no"}},
		"Finished": {domain.AgentEventItem{Seq: 5, Event: &domain.AgentFinished{Status: domain.AgentSucceeded, Result: "ok", CostUSD: 0.25,
			InputTokens: 10, OutputTokens: 2, CacheReadTokens: 1, NumTurns: 2, DurationMs: 30, SessionID: "s"}},
			&model.AgentFinished{Seq: 5, Status: domain.AgentSucceeded, Result: "ok", CostUsd: 0.25, InputTokens: 10, OutputTokens: 2,
				CacheReadTokens: 1, NumTurns: 2, DurationMs: 30, SessionID: "s"}},
		"Raw": {domain.AgentEventItem{Seq: 6, Event: &domain.AgentRaw{Line: "x"}}, &model.AgentRaw{Seq: 6, Line: "x"}},
		"End": {domain.AgentEventItem{Seq: 9, End: end},
			&model.AgentRunEnded{Seq: 9, Status: domain.CommandFailed, ExitCode: &exit, Command: end}},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, agentEvent(tt.in)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunAgent(t *testing.T) {
	high := domain.PriorityHigh
	turns, timeout := 3, 60
	got := runAgent(model.RunAgentInput{
		ProjectID: "demo", Prompt: "p", SessionID: new("s"), Model: new("m"), AllowedTools: []string{"Bash"},
		DisallowedTools: []string{"WebFetch"}, PermissionMode: new("plan"), MaxTurns: &turns, AppendSystemPrompt: new("a"),
		Env: []*model.EnvVarInput{{Name: "A", Value: "b"}}, Priority: &high, TimeoutSeconds: &timeout, ClientToken: new("tok"),
	})
	want := domain.RunAgent{
		ProjectID: "demo",
		Request: domain.AgentRequest{Prompt: "p", SessionID: "s", Model: "m", AllowedTools: []string{"Bash"},
			DisallowedTools: []string{"WebFetch"}, PermissionMode: "plan", MaxTurns: 3, AppendSystemPrompt: "a"},
		Env: []domain.EnvVar{{Name: "A", Value: "b"}}, Priority: domain.PriorityHigh, TimeoutSeconds: &timeout, ClientToken: "tok",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if d := runAgent(model.RunAgentInput{ProjectID: "demo", Prompt: "p"}); d.Priority != domain.PriorityNormal {
		t.Errorf("default priority %v", d.Priority)
	}
}
