//go:build linux

package main_test

import (
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/rdev-hq/rdev/internal/fakeanthropic"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// agentEventsQuery selects every event of an agentEvents stream.
const agentEventsQuery = `subscription($id: ID!, $after: Int) {
  agentEvents(runId: $id, afterSeq: $after) {
    __typename
    ... on AgentStarted { seq index sessionId model tools cwd }
    ... on AgentMessage { seq index role text }
    ... on AgentToolUse { seq index toolUseId name input }
    ... on AgentToolResult { seq index toolUseId isError content }
    ... on AgentFinished { seq index status result costUsd inputTokens outputTokens numTurns durationMs sessionId }
    ... on AgentRaw { seq index line }
    ... on AgentRunEnded { seq index commandStatus: status exitCode }
  }
}`

// agentEvent is an event of agentEvents, all types' fields in one.
type agentEvent struct {
	Type                string `json:"__typename"`
	Seq, Index          int
	SessionID, Model    string
	Tools               []string
	Cwd                 string
	Role, Text          string
	ToolUseID, Name     string
	Input, Content      string
	IsError             bool
	Status, Result      string
	CostUsd             float64
	InputTokens         int
	OutputTokens        int
	NumTurns            int
	Line, CommandStatus string
}

func eventTypes(events []agentEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.Type
	}
	return out
}

// agentEvents subscribes to run id's events after afterSeq over
// graphql-transport-ws and returns them all, up to the stream's end.
func (s *server) agentEvents(t *testing.T, token, id string, afterSeq int) []agentEvent {
	t.Helper()
	d := gorilla.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 10 * time.Second}
	c, res, err := d.DialContext(t.Context(), "ws"+strings.TrimPrefix(s.url, "http")+"/graphql", http.Header{})
	if res != nil && res.Body != nil {
		_ = res.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + token}}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteJSON(map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{
		"query": agentEventsQuery, "variables": map[string]any{"id": id, "after": afterSeq}}}); err != nil {
		t.Fatal(err)
	}
	var events []agentEvent
	for {
		var m struct {
			Type    string
			Payload json.RawMessage
		}
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("read after %d events: %v", len(events), err)
		}
		switch m.Type {
		case "next":
			var p struct {
				Data struct {
					AgentEvents agentEvent
				}
				Errors []any
			}
			if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
				t.Fatalf("event %s: %v", m.Payload, err)
			}
			events = append(events, p.Data.AgentEvents)
		case "error":
			t.Fatalf("subscription error: %s", m.Payload)
		case "complete":
			return events
		}
	}
}

// claudeForCommands returns the Claude Code CLI at a path the local
// executor's commands can run: when rdev runs as root they run as nobody,
// who cannot enter root's home, where the tools cache is.
func claudeForCommands(t *testing.T) (path, dir string) {
	t.Helper()
	claude, err := filepath.EvalSymlinks(testenv.ClaudeCLI(t))
	if err != nil {
		t.Fatal(err)
	}
	dir = t.TempDir()
	for p := dir; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		mustChmod(t, p, 0o755)
	}
	path = filepath.Join(dir, "claude")
	if err := os.Link(claude, path); err != nil {
		// Another file system: a copy, then.
		copyFile(t, claude, path)
	}
	return path, dir
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from) //nolint:gosec // the test's own CLI
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = src.Close() }()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755) //nolint:gosec // a program others must run
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(errors.Join(err, dst.Close()))
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestE2E_Agent runs the real Claude Code CLI through rdev, against a fake
// Messages API on loopback: runAgent queues it, agentEvents streams its
// typed events over graphql-transport-ws (a Bash tool call that really
// counts the project's files, its result, the answer, the cost and the
// session), a late subscription replays from a seq, commandOutput still
// serves the raw output, a second run resumes the session (the model sees
// the earlier turns), and `rdev agent` renders a run and exits with its
// result.
func TestE2E_Agent(t *testing.T) {
	claude, tools := claudeForCommands(t)
	fake, url := fakeanthropic.Start(t)
	in := newInstance(t, "RDEV_AGENT_CLAUDE_COMMAND="+claude, "RDEV_LOCAL_SANDBOX_READ="+tools)
	project := filepath.Join(in.workspace, "demo")
	for _, f := range []string{"a.txt", "b.txt", "main.go"} {
		mustWriteFile(t, filepath.Join(project, f), "content of "+f+"\n")
	}
	// The agent keeps its sessions in HOME, the project directory, by its
	// absolute path: the command's user (nobody, when rdev runs as root)
	// must be able to traverse the directories above it.
	for p := filepath.Dir(project); p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		mustChmod(t, p, 0o755)
	}
	runner, _ := in.createKey("--name", "runner", "--scopes", "commands:read,commands:write,projects:read")
	reader, _ := in.createKey("--name", "reader", "--scopes", "commands:read,projects:read")
	s := in.serve()
	// The model API's address and a fake key: the run's own environment
	// (HOME is the project directory, as for every local command).
	var env []map[string]string
	for name, value := range fakeanthropic.Env(url, project) {
		if name != "HOME" {
			env = append(env, map[string]string{"name": name, "value": value})
		}
	}
	const run = `mutation($in: RunAgentInput!) { runAgent(input: $in) { agentRun { id status protocol command { id } } } }`
	start := func(t *testing.T, in map[string]any) string {
		t.Helper()
		in["projectId"], in["env"] = "demo", env
		r := s.query(runner, run, map[string]any{"in": in})
		if len(r.Errors) > 0 {
			t.Fatalf("runAgent: %+v", r.Errors)
		}
		var p struct {
			RunAgent struct {
				AgentRun struct {
					ID, Status, Protocol string
					Command              struct{ ID string }
				}
			}
		}
		remarshal(t, r.Data, &p)
		ar := p.RunAgent.AgentRun
		if ar.ID == "" || ar.Command.ID != ar.ID || ar.Protocol != "claude-code" || ar.Status != "QUEUED" {
			t.Fatalf("runAgent returned %+v", ar)
		}
		return ar.ID
	}

	fake.Script(
		fakeanthropic.Tool("I will count the files.", "Bash", map[string]string{"command": "ls | wc -l", "description": "Count the files"}),
		fakeanthropic.Text("There are 3 files."),
	)
	id := start(t, map[string]any{"prompt": "list the files and count them", "allowedTools": []string{"Bash"}, "maxTurns": 4})
	all := s.agentEvents(t, reader, id, 0)
	want := []string{"AgentStarted", "AgentMessage", "AgentToolUse", "AgentToolResult", "AgentMessage", "AgentFinished", "AgentRunEnded"}
	if got := eventTypes(all); !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v: %+v", got, want, all)
	}
	started, use, result, answer, fin, end := all[0], all[2], all[3], all[4], all[5], all[6]
	if started.SessionID == "" || started.Cwd != project || !slices.Contains(started.Tools, "Bash") {
		t.Errorf("started %+v, want a session in %s with Bash", started, project)
	}
	var input struct{ Command string }
	if err := json.Unmarshal([]byte(use.Input), &input); err != nil || use.Name != "Bash" || input.Command != "ls | wc -l" {
		t.Errorf("tool use %+v, want Bash running ls | wc -l", use)
	}
	// The CLI really ran it in the project: three files.
	if result.ToolUseID != use.ToolUseID || result.IsError || strings.TrimSpace(result.Content) != "3" {
		t.Errorf("tool result %+v, want 3 for %s", result, use.ToolUseID)
	}
	if answer.Role != "ASSISTANT" || answer.Text != "There are 3 files." {
		t.Errorf("answer %+v", answer)
	}
	if fin.Status != "SUCCEEDED" || fin.CostUsd <= 0 || fin.SessionID != started.SessionID || fin.NumTurns != 2 || fin.InputTokens != 200 || fin.OutputTokens != 40 {
		t.Errorf("finished %+v, want SUCCEEDED with a cost, 2 turns, 200/40 tokens, session %s", fin, started.SessionID)
	}
	if end.CommandStatus != "SUCCEEDED" {
		t.Errorf("end %+v, want the command SUCCEEDED", end)
	}
	for i := 1; i < len(all)-1; i++ {
		if p, e := all[i-1], all[i]; e.Seq < p.Seq || (e.Seq == p.Seq && e.Index != p.Index+1) {
			t.Errorf("event %d at %d/%d after %d/%d", i, e.Seq, e.Index, p.Seq, p.Index)
		}
	}

	t.Run("ReplayFromSeq", func(t *testing.T) {
		late := s.agentEvents(t, reader, id, use.Seq)
		var want []agentEvent
		for _, e := range all {
			if e.Seq > use.Seq || e.Type == "AgentRunEnded" {
				want = append(want, e)
			}
		}
		if len(late) == 0 || !slices.EqualFunc(late, want, func(a, b agentEvent) bool { return a.Type == b.Type && a.Seq == b.Seq && a.Index == b.Index }) {
			t.Errorf("after seq %d: %v, want %v", use.Seq, eventTypes(late), eventTypes(want))
		}
	})

	t.Run("AgentRun", func(t *testing.T) {
		r := s.query(reader, `query($id: ID!) { agentRun(id: $id) { id status protocol sessionId model
			finished { status costUsd numTurns sessionId result } command { status exitCode } project { id } } }`, map[string]any{"id": id})
		var p struct {
			AgentRun struct {
				ID, Status, Protocol, SessionID, Model string
				Finished                               struct {
					Status, SessionID, Result string
					CostUsd                   float64
					NumTurns                  int
				}
				Command struct {
					Status   string
					ExitCode int
				}
				Project struct{ ID string }
			}
		}
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		remarshal(t, r.Data, &p)
		a := p.AgentRun
		if a.ID != id || a.Status != "SUCCEEDED" || a.SessionID != started.SessionID || a.Model != started.Model ||
			a.Finished.Status != "SUCCEEDED" || a.Finished.CostUsd != fin.CostUsd || a.Finished.Result != "There are 3 files." ||
			a.Command.Status != "SUCCEEDED" || a.Project.ID != "demo" {
			t.Errorf("agentRun %+v", a)
		}
	})

	t.Run("CommandOutput", func(t *testing.T) {
		cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+reader)}
		out, errs, code := cli.cli("logs", id)
		if code != 0 || !strings.Contains(out, `"type":"result"`) || !strings.Contains(out, `"type":"system"`) {
			t.Errorf("rdev logs of the run: exit %d, stdout %q, stderr %q", code, out, errs)
		}
	})

	var resumedCost float64
	t.Run("Resume", func(t *testing.T) {
		fake.Script(fakeanthropic.Text("We counted 3 files."))
		before := len(fake.Requests())
		second := start(t, map[string]any{"prompt": "what did we count?", "sessionId": started.SessionID, "maxTurns": 2})
		events := s.agentEvents(t, reader, second, 0)
		if len(events) < 3 || events[0].Type != "AgentStarted" || events[0].SessionID != started.SessionID {
			t.Fatalf("resumed run's events %+v, want it to start in session %s", events, started.SessionID)
		}
		if f := events[len(events)-2]; f.Type != "AgentFinished" || f.Result != "We counted 3 files." || f.SessionID != started.SessionID {
			t.Errorf("resumed run finished %+v", f)
		} else {
			resumedCost = f.CostUsd
		}
		reqs := fake.Requests()[before:]
		if len(reqs) != 1 {
			t.Fatalf("%d requests to the model API, want 1", len(reqs))
		}
		var seen strings.Builder
		for _, m := range reqs[0].Messages {
			seen.Write(m)
		}
		// The model saw the earlier turns: the prompt, the tool call and its
		// result, the answer, then the new prompt.
		for _, s := range []string{"list the files and count them", `"tool_use_id":"` + use.ToolUseID + `"`, "There are 3 files.", "what did we count?"} {
			if !strings.Contains(seen.String(), s) {
				t.Errorf("the resumed request lacks %s", s)
			}
		}
	})

	t.Run("AgentSessions", func(t *testing.T) {
		// Both runs of the session, summed from their stored summaries
		// (stored as each command ended, so perhaps just after the stream).
		type session struct {
			ID, LastActiveAt                string
			Runs, InputTokens, OutputTokens int
			TotalCostUsd                    float64
			Project                         struct{ ID string }
		}
		var got []session
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r := s.query(reader, `query { agentSessions(projectId: "demo", first: 10) { id runs totalCostUsd inputTokens outputTokens lastActiveAt project { id } } }`, nil)
			if len(r.Errors) > 0 {
				t.Fatal(r.Errors)
			}
			var p struct{ AgentSessions []session }
			remarshal(t, r.Data, &p)
			if got = p.AgentSessions; len(got) == 1 && got[0].Runs == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("agentSessions = %+v, want one session of 2 runs", got)
			}
		}
		a := got[0]
		if want := fin.CostUsd + resumedCost; a.ID != started.SessionID || a.Project.ID != "demo" || resumedCost <= 0 ||
			math.Abs(a.TotalCostUsd-want) > 1e-9 || a.InputTokens < fin.InputTokens || a.LastActiveAt == "" {
			t.Errorf("session %+v, want %s costing %v + %v", a, started.SessionID, fin.CostUsd, resumedCost)
		}
		if r := s.query(reader, `query { agentSessions(projectId: "demo", first: 0) { id } }`, nil); r.code() != "INVALID_INPUT" {
			t.Errorf("agentSessions(first: 0): %+v, want INVALID_INPUT", r.Errors)
		}

		// The same two runs, in the metrics.
		body, mfs := scrape(t, s.url+"/metrics")
		runs, _ := value(mfs, "rdev_agent_runs_total", map[string]string{"project": "demo", "status": "SUCCEEDED"})
		cost, _ := value(mfs, "rdev_agent_cost_usd_total", map[string]string{"project": "demo"})
		input, _ := value(mfs, "rdev_agent_tokens_total", map[string]string{"project": "demo", "kind": "input"})
		output, _ := value(mfs, "rdev_agent_tokens_total", map[string]string{"project": "demo", "kind": "output"})
		if runs != 2 || math.Abs(cost-a.TotalCostUsd) > 1e-9 || input != float64(a.InputTokens) || output != float64(a.OutputTokens) {
			t.Errorf("agent metrics: %v runs, $%v, %v/%v tokens; want 2, $%v, %d/%d", runs, cost, input, output, a.TotalCostUsd, a.InputTokens, a.OutputTokens)
		}
		promtoolCheck(t, body)
	})

	t.Run("SessionInUse", func(t *testing.T) {
		// A resumed run waits for the model; meanwhile another run of its
		// session is refused, naming it.
		release := make(chan struct{})
		fake.Script(fakeanthropic.Turn{Text: "Still 3 files.", Wait: release})
		before := len(fake.Requests())
		resume := map[string]any{"prompt": "and now?", "sessionId": started.SessionID, "maxTurns": 2}
		busy := start(t, resume)
		for deadline := time.Now().Add(time.Minute); len(fake.Requests()) == before; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the resumed run did not reach the model API within a minute")
			}
		}
		in := map[string]any{"projectId": "demo", "env": env, "prompt": "again?", "sessionId": started.SessionID}
		r := s.query(runner, run, map[string]any{"in": in})
		if r.code() != "CONFLICT" || !strings.Contains(r.Errors[0].Message, busy) {
			t.Errorf("runAgent on a session in use: %+v, want CONFLICT naming run %s", r.Errors, busy)
		}
		close(release)
		if events := s.agentEvents(t, reader, busy, 0); len(events) < 2 || events[len(events)-2].Result != "Still 3 files." {
			t.Fatalf("the held run's events %+v", events)
		}
		// Ended, the session can be resumed again.
		fake.Script(fakeanthropic.Text("Yes."))
		s.agentEvents(t, reader, start(t, resume), 0)
	})

	t.Run("Errors", func(t *testing.T) {
		for _, tt := range []struct {
			name, token, query string
			vars               map[string]any
			code               string
		}{
			{"PermissionMode", runner, run, map[string]any{"in": map[string]any{"projectId": "demo", "prompt": "hi", "permissionMode": "yolo"}}, "INVALID_INPUT"},
			{"MaxTurns", runner, run, map[string]any{"in": map[string]any{"projectId": "demo", "prompt": "hi", "maxTurns": -1}}, "INVALID_INPUT"},
			{"MaxCost", runner, run, map[string]any{"in": map[string]any{"projectId": "demo", "prompt": "hi", "maxCostUsd": -1}}, "INVALID_INPUT"},
			{"Forbidden", reader, run, map[string]any{"in": map[string]any{"projectId": "demo", "prompt": "hi"}}, "FORBIDDEN"},
			{"NoProject", runner, run, map[string]any{"in": map[string]any{"projectId": "nope", "prompt": "hi"}}, "NOT_FOUND"},
			{"NoRun", reader, `query($id: ID!) { agentRun(id: $id) { id } }`, map[string]any{"id": "nope"}, "NOT_FOUND"},
		} {
			if r := s.query(tt.token, tt.query, tt.vars); r.code() != tt.code {
				t.Errorf("%s: %+v, want %s", tt.name, r.Errors, tt.code)
			}
		}
		// A plain command is no agent run.
		r := s.query(runner, `mutation { executeCommand(input: {projectId: "demo", argv: ["true"]}) { command { id } } }`, nil)
		var p struct {
			ExecuteCommand struct{ Command struct{ ID string } }
		}
		remarshal(t, r.Data, &p)
		if r := s.query(reader, `query($id: ID!) { agentRun(id: $id) { id } }`, map[string]any{"id": p.ExecuteCommand.Command.ID}); r.code() != "NOT_FOUND" {
			t.Errorf("agentRun of a plain command: %+v, want NOT_FOUND", r.Errors)
		}
	})

	t.Run("CLI", func(t *testing.T) {
		cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+runner)}
		var envFlags []string
		for _, v := range env {
			envFlags = append(envFlags, "--env", v["name"]+"="+v["value"])
		}
		args := append([]string{"agent", "--allowed-tools", "Bash", "--max-turns", "4"}, envFlags...)
		fake.Script(
			fakeanthropic.Tool("I will count the files.", "Bash", map[string]string{"command": "ls | wc -l", "description": "Count the files"}),
			fakeanthropic.Text("There are 3 files."),
		)
		// As the README shows it: flags may follow the prompt.
		out, errs, code := cli.cli(append([]string{"agent", "demo", "list the files and count them", "--allowed-tools", "Bash"}, envFlags...)...)
		t.Logf("rdev agent demo \"list the files and count them\":\n%s", out)
		if code != 0 {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		for _, want := range []string{"● session ", "I will count the files.\n", "→ Bash ls | wc -l\n", "  ← 3\n", "There are 3 files.\n", "✓ SUCCEEDED · $", "2 turns"} {
			if !strings.Contains(out, want) {
				t.Errorf("the rendering lacks %q:\n%s", want, out)
			}
		}

		fake.Script(fakeanthropic.Text("Hello."))
		out, errs, code = cli.cli(append(args, "--json", "demo", "say hello")...)
		if code != 0 {
			t.Fatalf("--json: exit %d, stderr %q", code, errs)
		}
		var types []string
		for line := range strings.Lines(out) {
			var e agentEvent
			if err := json.Unmarshal([]byte(line), &e); err != nil {
				t.Fatalf("--json printed %q: %v", line, err)
			}
			types = append(types, e.Type)
		}
		if want := []string{"AgentStarted", "AgentMessage", "AgentFinished", "AgentRunEnded"}; !slices.Equal(types, want) {
			t.Errorf("--json printed %v, want %v:\n%s", types, want, out)
		}

		// Stopped at its turn limit: the agent did not finish, and says so.
		fake.Script(fakeanthropic.Tool("", "Bash", map[string]string{"command": "true", "description": "Do nothing"}))
		out, _, code = cli.cli("agent", "--allowed-tools", "Bash", "--max-turns", "1", "--env", "ANTHROPIC_BASE_URL="+url,
			"--env", "ANTHROPIC_API_KEY=sk-ant-fake", "demo", "loop")
		if code == 0 || !strings.Contains(out, "✗ MAX_TURNS") {
			t.Errorf("a run stopped at its turn limit: exit %d:\n%s", code, out)
		}

		// Stopped by its budget: the turn that passed it was the last, and
		// its tool call never ran.
		fake.Script(fakeanthropic.Tool("", "Bash", map[string]string{"command": "touch spent", "description": "Spend"}))
		out, _, code = cli.cli("agent", "--allowed-tools", "Bash", "--max-turns", "5", "--max-cost", "0.0001", "--env", "ANTHROPIC_BASE_URL="+url,
			"--env", "ANTHROPIC_API_KEY=sk-ant-fake", "demo", "spend")
		if code == 0 || !strings.Contains(out, "✗ OVER_BUDGET") {
			t.Errorf("a run over its budget: exit %d:\n%s", code, out)
		}
		if _, err := os.Stat(filepath.Join(in.workspace, "demo", "spent")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the tool call of the turn over budget ran (%v)", err)
		}
	})
}

// remarshal decodes a response's data into out.
func remarshal(t *testing.T, data map[string]any, out any) {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
}
