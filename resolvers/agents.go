package resolvers

import (
	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph/model"
)

func runAgent(in model.RunAgentInput) domain.RunAgent {
	out := domain.RunAgent{
		ProjectID: in.ProjectID,
		Request: domain.AgentRequest{
			Prompt: in.Prompt, SessionID: deref(in.SessionID), Model: deref(in.Model),
			AllowedTools: in.AllowedTools, DisallowedTools: in.DisallowedTools,
			PermissionMode: deref(in.PermissionMode), MaxTurns: deref(in.MaxTurns),
			AppendSystemPrompt: deref(in.AppendSystemPrompt), MaxCostUSD: deref(in.MaxCostUsd),
		},
		TimeoutSeconds: in.TimeoutSeconds, ClientToken: deref(in.ClientToken), Priority: domain.PriorityNormal,
	}
	if in.Priority != nil {
		out.Priority = *in.Priority
	}
	for _, v := range in.Env {
		out.Env = append(out.Env, domain.EnvVar{Name: v.Name, Value: v.Value})
	}
	return out
}

// agentEvent maps an item of an agent run's stream to its GraphQL type.
func agentEvent(it domain.AgentEventItem) model.AgentEvent {
	seq, index := int(it.Seq), it.Index
	if c := it.End; c != nil {
		return &model.AgentRunEnded{Seq: seq, Status: c.Status, ExitCode: c.ExitCode, Command: c}
	}
	switch e := it.Event.(type) {
	case *domain.AgentStarted:
		tools := e.Tools
		if tools == nil {
			tools = []string{}
		}
		return &model.AgentStarted{Seq: seq, Index: index, SessionID: e.SessionID, Model: e.Model, Tools: tools, Cwd: e.Cwd}
	case *domain.AgentMessage:
		return &model.AgentMessage{Seq: seq, Index: index, Role: e.Role, Text: e.Text}
	case *domain.AgentToolUse:
		input := string(e.Input)
		if input == "" {
			input = "null"
		}
		return &model.AgentToolUse{Seq: seq, Index: index, ToolUseID: e.ToolUseID, Name: e.Name, Input: input}
	case *domain.AgentToolResult:
		return &model.AgentToolResult{Seq: seq, Index: index, ToolUseID: e.ToolUseID, IsError: e.IsError, Content: e.Content}
	case *domain.AgentFinished:
		return agentFinished(e, seq, index)
	case *domain.AgentRaw:
		return &model.AgentRaw{Seq: seq, Index: index, Line: e.Line}
	}
	return &model.AgentRaw{Seq: seq, Index: index}
}

func agentFinished(e *domain.AgentFinished, seq, index int) *model.AgentFinished {
	return &model.AgentFinished{
		Seq: seq, Index: index, Status: e.Status, Result: e.Result, CostUsd: e.CostUSD,
		InputTokens: int(e.InputTokens), OutputTokens: int(e.OutputTokens), CacheReadTokens: int(e.CacheReadTokens),
		NumTurns: e.NumTurns, DurationMs: int(e.DurationMs), SessionID: e.SessionID,
	}
}
