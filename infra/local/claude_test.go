//go:build linux

package local_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/local"
	"github.com/rdev-hq/rdev/internal/fakeanthropic"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// updateTranscripts makes TestExecutor_ClaudeCode write what the CLI printed
// to domain/testdata/agent, the transcripts the parser's tests read.
var updateTranscripts = flag.Bool("update-agent-transcripts", false,
	"write the Claude Code transcripts of TestExecutor_ClaudeCode to domain/testdata/agent")

const transcriptDir = "../../domain/testdata/agent"

// agentRun is what one run of an agent printed, and its events, parsed as
// the output arrived.
type agentRun struct {
	res    domain.ExecResult
	stdout []byte
	stderr string
	events []domain.AgentEvent
}

// parsingWriter parses an agent's stdout chunk by chunk, as the executor
// writes it, and keeps the bytes.
type parsingWriter struct {
	mu     sync.Mutex
	parser *domain.AgentParser
	out    bytes.Buffer
	events []domain.AgentEvent
}

func (w *parsingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.out.Write(p)
	w.events = append(w.events, w.parser.Parse(p)...)
	return len(p), nil
}

// runAgent runs the agent of req with proto through ex, as rdev runs a
// command, with env, bounded in time.
func runAgent(t *testing.T, ex *local.Executor, proj *domain.Project, proto domain.AgentProtocol, req domain.AgentRequest, env map[string]string) agentRun {
	t.Helper()
	argv, err := proto.Argv(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	stdout := &parsingWriter{parser: domain.NewAgentParser(proto, 0)}
	var stderr bytes.Buffer
	res, err := ex.Exec(ctx, domain.ExecRequest{Project: proj, Argv: argv, Env: env}, stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatalf("the agent did not end within its time: %s\nstdout:\n%s\nstderr:\n%s", argv, stdout.out.Bytes(), stderr.Bytes())
	}
	run := agentRun{res: res, stdout: stdout.out.Bytes(), stderr: stderr.String(), events: append(stdout.events, stdout.parser.Close()...)}
	if *updateTranscripts {
		t.Logf("stdout:\n%s", run.stdout)
	}
	return run
}

// checkTranscript writes run's stdout to the transcript name with
// -update-agent-transcripts; otherwise it checks that the recorded
// transcript parses to the same events as run, apart from what differs
// from run to run (session IDs, working directory, durations).
func checkTranscript(t *testing.T, name string, run agentRun) {
	t.Helper()
	path := filepath.Join(transcriptDir, name)
	if *updateTranscripts {
		if err := os.WriteFile(path, run.stdout, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	recorded, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p := domain.NewAgentParser(domain.NewClaudeCode(), 0)
	want := append(p.Parse(recorded), p.Close()...)
	if diff := cmp.Diff(normalized(want), normalized(run.events)); diff != "" {
		t.Errorf("the CLI now prints what parses differently from %s (-recorded +now); if the CLI changed on purpose, rerun with -update-agent-transcripts:\n%s", path, diff)
	}
}

// normalized returns events with what differs from run to run blanked.
func normalized(events []domain.AgentEvent) []domain.AgentEvent {
	out := make([]domain.AgentEvent, len(events))
	for i, e := range events {
		switch e := e.(type) {
		case *domain.AgentStarted:
			c := *e
			c.SessionID, c.Cwd = "SESSION", "CWD"
			out[i] = &c
		case *domain.AgentFinished:
			c := *e
			c.SessionID, c.DurationMs = "SESSION", 0
			out[i] = &c
		default:
			out[i] = e
		}
	}
	return out
}

// wantEvents checks run's events against want, apart from session IDs, the
// list of tools, durations and cost (checked elsewhere), then against the
// recorded transcript.
func wantEvents(t *testing.T, run agentRun, want []domain.AgentEvent, transcript string) {
	t.Helper()
	ignore := cmp.Options{
		cmpopts.IgnoreFields(domain.AgentStarted{}, "SessionID", "Tools"),
		cmpopts.IgnoreFields(domain.AgentFinished{}, "SessionID", "DurationMs", "CostUSD"),
	}
	if diff := cmp.Diff(want, run.events, ignore); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	checkTranscript(t, transcript, run)
}

// toolTurn is a scripted tool call with a fixed ID, so transcripts do not
// depend on the order the subtests run in.
func toolTurn(id, say, name string, input any) fakeanthropic.Turn {
	t := fakeanthropic.Tool(say, name, input)
	t.ToolUse.ID = id
	return t
}

// TestExecutor_ClaudeCode runs the real Claude Code CLI through the local
// executor against a fake model API, and checks the events its output
// parses to: a text answer, a Bash tool call that really runs in the
// project, a resumed session, a failing tool, every option of the argv
// builder, and the turn limit.
func TestExecutor_ClaudeCode(t *testing.T) {
	claude := testenv.ClaudeCLI(t)
	fake, url := fakeanthropic.Start(t)
	ex, proj, dir := newExecutor(t)
	for _, f := range []string{"a.txt", "b.txt", "main.go"} {
		mustWriteMode(t, filepath.Join(dir, f), "content of "+f+"\n", 0o600)
	}
	env := fakeanthropic.Env(url, t.TempDir())
	proto := domain.NewClaudeCode(claude)

	// started checks the first event and returns the run's session.
	started := func(t *testing.T, run agentRun) string {
		t.Helper()
		if len(run.events) == 0 {
			t.Fatalf("no events; stdout:\n%s\nstderr:\n%s", run.stdout, run.stderr)
		}
		s, ok := run.events[0].(*domain.AgentStarted)
		if !ok || !strings.Contains(strings.Join(s.Tools, " "), "Bash") || s.Cwd != dir || s.Model == "" || s.SessionID == "" {
			t.Fatalf("first event = %#v, want AgentStarted in %s with Bash among the tools", run.events[0], dir)
		}
		return s.SessionID
	}
	// finished checks the last event's session and cost.
	finished := func(t *testing.T, run agentRun, session string) *domain.AgentFinished {
		t.Helper()
		f, ok := run.events[len(run.events)-1].(*domain.AgentFinished)
		if !ok || f.SessionID != session || f.CostUSD <= 0 || f.DurationMs <= 0 {
			t.Fatalf("last event = %#v, want AgentFinished of session %s with a cost and a duration", run.events[len(run.events)-1], session)
		}
		return f
	}

	var toolSession string
	t.Run("Text", func(t *testing.T) {
		fake.Script(fakeanthropic.Text("Hello from the fake model."))
		run := runAgent(t, ex, proj, proto, domain.AgentRequest{Prompt: "say hello", MaxTurns: 3}, env)
		session := started(t, run)
		finished(t, run, session)
		want := []domain.AgentEvent{
			&domain.AgentStarted{Model: run.events[0].(*domain.AgentStarted).Model, Cwd: dir},
			&domain.AgentMessage{Role: domain.AgentRoleAssistant, Text: "Hello from the fake model."},
			&domain.AgentFinished{Status: domain.AgentSucceeded, Result: "Hello from the fake model.", InputTokens: 100, OutputTokens: 20, NumTurns: 1},
		}
		wantEvents(t, run, want, "claude-text.jsonl")
	})

	t.Run("ToolUse", func(t *testing.T) {
		fake.Script(
			toolTurn("toolu_count", "I will count the files.", "Bash", map[string]string{"command": "ls | wc -l", "description": "Count the files"}),
			fakeanthropic.Text("There are 3 files."),
		)
		run := runAgent(t, ex, proj, proto, domain.AgentRequest{Prompt: "list the files and count them", AllowedTools: []string{"Bash"}, MaxTurns: 4}, env)
		toolSession = started(t, run)
		if run.res.ExitCode != 0 {
			t.Errorf("exit code %d, want 0; stderr:\n%s", run.res.ExitCode, run.stderr)
		}
		finished(t, run, toolSession)
		want := []domain.AgentEvent{
			&domain.AgentStarted{Model: run.events[0].(*domain.AgentStarted).Model, Cwd: dir},
			&domain.AgentMessage{Role: domain.AgentRoleAssistant, Text: "I will count the files."},
			&domain.AgentToolUse{ToolUseID: "toolu_count", Name: "Bash", Input: json.RawMessage(`{"command":"ls | wc -l","description":"Count the files"}`)},
			// The CLI really ran it in the project: three files.
			&domain.AgentToolResult{ToolUseID: "toolu_count", Content: "3"},
			&domain.AgentMessage{Role: domain.AgentRoleAssistant, Text: "There are 3 files."},
			&domain.AgentFinished{Status: domain.AgentSucceeded, Result: "There are 3 files.", InputTokens: 200, OutputTokens: 40, NumTurns: 2},
		}
		wantEvents(t, run, want, "claude-tool.jsonl")
	})

	t.Run("Resume", func(t *testing.T) {
		if toolSession == "" {
			t.Skip("ToolUse did not run")
		}
		fake.Script(fakeanthropic.Text("We counted 3 files."))
		before := len(fake.Requests())
		run := runAgent(t, ex, proj, proto, domain.AgentRequest{Prompt: "what did we count?", SessionID: toolSession, MaxTurns: 2}, env)
		if got := started(t, run); got != toolSession {
			t.Errorf("resumed session %s, want %s", got, toolSession)
		}
		finished(t, run, toolSession)
		// The model saw the earlier turns again: the tool call, its result,
		// then the new prompt.
		reqs := fake.Requests()[before:]
		if len(reqs) != 1 {
			t.Fatalf("%d requests to the model API, want 1", len(reqs))
		}
		var roles []string
		var all strings.Builder
		for _, m := range reqs[0].Messages {
			var msg struct{ Role string }
			_ = json.Unmarshal(m, &msg)
			roles = append(roles, msg.Role)
			all.Write(m)
		}
		for _, s := range []string{"list the files and count them", `"id":"toolu_count"`, `"tool_use_id":"toolu_count"`, "There are 3 files.", "what did we count?"} {
			if !strings.Contains(all.String(), s) {
				t.Errorf("the resumed request's messages lack %s; roles %v", s, roles)
			}
		}
		checkTranscript(t, "claude-resume.jsonl", run)
	})

	t.Run("ToolError", func(t *testing.T) {
		fake.Script(
			toolTurn("toolu_missing", "", "Bash", map[string]string{"command": "cat missing.txt", "description": "Show missing.txt"}),
			fakeanthropic.Text("There is no missing.txt."),
		)
		run := runAgent(t, ex, proj, proto, domain.AgentRequest{Prompt: "show missing.txt", AllowedTools: []string{"Bash"}, MaxTurns: 4}, env)
		started(t, run)
		var result *domain.AgentToolResult
		for _, e := range run.events {
			if r, ok := e.(*domain.AgentToolResult); ok {
				result = r
			}
		}
		if result == nil || !result.IsError || result.ToolUseID != "toolu_missing" || !strings.Contains(result.Content, "No such file") {
			t.Errorf("tool result = %#v, want an error about missing.txt", result)
		}
		checkTranscript(t, "claude-tool-error.jsonl", run)
	})

	// Every option the argv builder passes is taken by the real CLI as
	// meant, input that starts with dashes included.
	t.Run("Options", func(t *testing.T) {
		fake.Script(fakeanthropic.Text("Fine."))
		before := len(fake.Requests())
		run := runAgent(t, ex, proj, proto, domain.AgentRequest{
			Prompt:             "--help",
			Model:              "claude-sonnet-4-5",
			AllowedTools:       []string{"Bash(ls:*)", "Read"},
			DisallowedTools:    []string{"WebFetch", "WebSearch"},
			PermissionMode:     "dontAsk",
			MaxTurns:           2,
			AppendSystemPrompt: "--Answer in one word.",
		}, env)
		started(t, run)
		s := run.events[0].(*domain.AgentStarted)
		if s.Model != "claude-sonnet-4-5" || slices.Contains(s.Tools, "WebFetch") || slices.Contains(s.Tools, "WebSearch") {
			t.Errorf("started %+v: want model claude-sonnet-4-5, without WebFetch and WebSearch", s)
		}
		if f, ok := run.events[len(run.events)-1].(*domain.AgentFinished); !ok || f.Status != domain.AgentSucceeded || f.Result != "Fine." {
			t.Errorf("last event %#v, want the answer Fine.", run.events[len(run.events)-1])
		}
		reqs := fake.Requests()[before:]
		if len(reqs) != 1 {
			t.Fatalf("%d requests to the model API, want 1", len(reqs))
		}
		body := string(reqs[0].Body)
		last := string(reqs[0].Messages[len(reqs[0].Messages)-1])
		if reqs[0].Model != "claude-sonnet-4-5" || !strings.Contains(body, "--Answer in one word.") || !strings.Contains(last, `"--help"`) {
			t.Errorf("request of model %s, with the system prompt text: %v, ending with the prompt: %s",
				reqs[0].Model, strings.Contains(body, "--Answer in one word."), last)
		}
	})

	t.Run("MaxBudget", func(t *testing.T) {
		fake.Script(toolTurn("toolu_budget", "", "Bash", map[string]string{"command": "true", "description": "Do nothing"}))
		run := runAgent(t, ex, proj, proto, domain.AgentRequest{Prompt: "spend", AllowedTools: []string{"Bash"}, MaxTurns: 5, MaxCostUSD: 0.0001}, env)
		session := started(t, run)
		f := finished(t, run, session)
		// The agent checks its budget after each model turn: the first one
		// already spent more, so its tool call never ran.
		if f.Status != domain.AgentOverBudget || f.CostUSD <= 0.0001 || f.NumTurns != 1 || run.res.ExitCode != 1 {
			t.Errorf("end = %#v with exit code %d, want OVER_BUDGET after one turn, exit code 1", f, run.res.ExitCode)
		}
	})

	t.Run("MaxTurns", func(t *testing.T) {
		fake.Script(toolTurn("toolu_again", "", "Bash", map[string]string{"command": "true", "description": "Do nothing"}))
		run := runAgent(t, ex, proj, proto, domain.AgentRequest{Prompt: "loop", AllowedTools: []string{"Bash"}, MaxTurns: 1}, env)
		session := started(t, run)
		f := finished(t, run, session)
		if f.Status != domain.AgentMaxTurns || !strings.Contains(f.Result, "maximum number of turns") || run.res.ExitCode != 1 {
			t.Errorf("end = %#v with exit code %d, want MAX_TURNS with exit code 1", f, run.res.ExitCode)
		}
		checkTranscript(t, "claude-max-turns.jsonl", run)
	})
}
