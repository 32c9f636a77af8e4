package domain

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func newAgentEnv(tb testing.TB) (*commandEnv, *AgentService) {
	tb.Helper()
	e := newCommandEnv(tb)
	return e, NewAgentService(e.svc, NewAgentProtocols(NewClaudeCode("claude")), ClaudeCodeProtocol)
}

func TestAgentService_Run(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		e, s := newAgentEnv(t)
		run, err := s.Run(keyContext(t, writerKey), RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "count the files", MaxTurns: 3}})
		if err != nil {
			t.Fatal(err)
		}
		stored := e.repo.command(run.Command.ID)
		want := []string{"claude", "-p", "--output-format", "stream-json", "--verbose", "--max-turns=3", "--", "count the files"}
		if stored == nil || stored.AgentProtocol != ClaudeCodeProtocol || stored.Type != CommandClaude || !slices.Equal(stored.Argv, want) {
			t.Fatalf("stored command = %+v, want an agent run of %v", stored, want)
		}
		if run.Started != nil || run.Finished != nil || run.SessionID() != "" {
			t.Errorf("a queued run has started or finished: %+v", run)
		}
	})

	t.Run("Idempotent", func(t *testing.T) {
		_, s := newAgentEnv(t)
		ctx := keyContext(t, writerKey)
		in := RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi"}, ClientToken: "tok"}
		a, err := s.Run(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Run(ctx, in)
		if err != nil || b.Command.ID != a.Command.ID {
			t.Fatalf("second run = %v, %v; want the first, %s", b, err, a.Command.ID)
		}
		in.Request.Prompt = "something else"
		_, err = s.Run(ctx, in)
		wantCode(t, err, ECONFLICT)
	})

	for name, tt := range map[string]struct {
		key  *APIKey
		in   RunAgent
		code string
	}{
		"ErrForbidden":      {readerKey, RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi"}}, EFORBIDDEN},
		"ErrEmptyPrompt":    {writerKey, RunAgent{ProjectID: "web"}, EINVALID},
		"ErrMaxTurns":       {writerKey, RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi", MaxTurns: -1}}, EINVALID},
		"ErrPermissionMode": {writerKey, RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi", PermissionMode: "yolo"}}, EINVALID},
		"ErrSession":        {writerKey, RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi", SessionID: "--x"}}, EINVALID},
		"ErrProtocol":       {writerKey, RunAgent{ProjectID: "web", Protocol: "codex", Request: AgentRequest{Prompt: "hi"}}, EINVALID},
		"ErrEnv":            {writerKey, RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi"}, Env: []EnvVar{{Name: "1X"}}}, EINVALID},
		"ErrProject":        {writerKey, RunAgent{ProjectID: "nope", Request: AgentRequest{Prompt: "hi"}}, ENOTFOUND},
		"ErrProjectAsleep":  {writerKey, RunAgent{ProjectID: "asleep", Request: AgentRequest{Prompt: "hi"}}, ECONFLICT},
	} {
		t.Run(name, func(t *testing.T) {
			e, s := newAgentEnv(t)
			_, err := s.Run(keyContext(t, tt.key), tt.in)
			wantCode(t, err, tt.code)
			if n := len(e.repo.newestFirst(func(*Command) bool { return true })); n != 0 {
				t.Errorf("%d commands queued by a refused run", n)
			}
			// Refused, wherever it was: recorded as such.
			entries := e.repo.audit.all()
			if len(entries) != 1 || entries[0].Action != AuditCommandExecute || entries[0].Outcome == AuditSuccess || entries[0].ErrorCode != tt.code {
				t.Errorf("audit log %+v, want one refused %s with %s", entries, AuditCommandExecute, tt.code)
			}
		})
	}
}

func TestAgentService_Get(t *testing.T) {
	t.Run("ErrNotAgentRun", func(t *testing.T) {
		e, s := newAgentEnv(t)
		c := mustExecute(t, e, ls())
		_, err := s.Get(keyContext(t, readerKey), c.ID)
		wantCode(t, err, ENOTFOUND)
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, s := newAgentEnv(t)
		_, err := s.Get(keyContext(t, readerKey), "nope")
		wantCode(t, err, ENOTFOUND)
	})
	t.Run("ErrOutOfScope", func(t *testing.T) {
		_, s := newAgentEnv(t)
		run, err := s.Run(keyContext(t, writerKey), RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi"}})
		if err != nil {
			t.Fatal(err)
		}
		scoped := &APIKey{ID: "0000scopedkey000", Scopes: Scopes{ScopeCommandsRead}, Projects: ProjectScope{Names: []string{"api"}}}
		_, err = s.Get(keyContext(t, scoped), run.Command.ID)
		wantCode(t, err, ENOTFOUND)
		_, err = s.Events(keyContext(t, scoped), run.Command.ID, 0)
		wantCode(t, err, ENOTFOUND)
	})
}

// runTranscript stores the recorded transcript name as the stdout of a new
// agent run, cut into chunks of size bytes with a stderr chunk between, and
// finishes it.
func runTranscript(t *testing.T, e *commandEnv, s *AgentService, name string, size int) *Command {
	t.Helper()
	data, err := os.ReadFile("testdata/agent/" + name)
	if err != nil {
		t.Fatal(err)
	}
	run, err := s.Run(keyContext(t, writerKey), RunAgent{ProjectID: "web", Request: AgentRequest{Prompt: "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	p := &producer{repo: e.repo, hub: e.hub, id: run.Command.ID}
	now := time.Now().UTC()
	e.repo.set(func(r *commandRepo) {
		c := r.cmds[p.id]
		c.Status, c.Owner, c.StartedAt, c.LeaseExpiresAt = CommandRunning, producerOwner, &now, new(now.Add(time.Hour))
	})
	var chunks []OutputChunk
	for len(data) > 0 {
		n := min(size, len(data))
		p.seq++
		chunks = append(chunks, OutputChunk{CommandID: p.id, Seq: p.seq, Stream: Stdout, Data: string(data[:n]), At: now})
		p.seq++
		chunks = append(chunks, OutputChunk{CommandID: p.id, Seq: p.seq, Stream: Stderr, Data: "{not an event}\n", At: now})
		data = data[n:]
	}
	if err := e.repo.AppendOutput(context.Background(), Lease{}, chunks); err != nil {
		t.Fatal(err)
	}
	return p.finish(t)
}

func collectAgent(t *testing.T, ch <-chan AgentEventItem) []AgentEventItem {
	t.Helper()
	var items []AgentEventItem
	timeout := time.After(10 * time.Second)
	for {
		select {
		case it, ok := <-ch:
			if !ok {
				return items
			}
			items = append(items, it)
		case <-timeout:
			t.Fatalf("the stream did not end; got %d items", len(items))
		}
	}
}

func TestAgentService_Events(t *testing.T) {
	e, s := newAgentEnv(t)
	c := runTranscript(t, e, s, "claude-tool.jsonl", 97)
	ctx := keyContext(t, readerKey)
	all := collectAgent(t, must(s.Events(ctx, c.ID, 0)))
	if len(all) < 2 || all[len(all)-1].End == nil || all[len(all)-1].End.Status != CommandSucceeded {
		t.Fatalf("items %+v, want events then the end", all)
	}
	var kinds []string
	for _, it := range all[:len(all)-1] {
		switch it.Event.(type) {
		case *AgentStarted:
			kinds = append(kinds, "started")
		case *AgentToolUse:
			kinds = append(kinds, "tool")
		case *AgentToolResult:
			kinds = append(kinds, "result")
		case *AgentFinished:
			kinds = append(kinds, "finished")
		case *AgentMessage:
			kinds = append(kinds, "message")
		}
		if it.Seq%2 != 1 {
			t.Errorf("event %T has the seq %d of a stderr chunk", it.Event, it.Seq)
		}
	}
	if want := []string{"started", "message", "tool", "result", "message", "finished"}; !slices.Equal(kinds, want) {
		t.Errorf("events %v, want %v", kinds, want)
	}

	// From any seq, the stream goes on with exactly the items after it.
	for _, after := range []int64{1, all[2].Seq, all[2].Seq + 1, all[len(all)-2].Seq} {
		got := collectAgent(t, must(s.Events(ctx, c.ID, after)))
		var want []AgentEventItem
		for _, it := range all {
			if it.Seq > after || it.End != nil {
				want = append(want, it)
			}
		}
		if len(got) != len(want) {
			t.Fatalf("after %d: %d items, want %d", after, len(got), len(want))
		}
		for i := range got {
			if got[i].Seq != want[i].Seq || got[i].Index != want[i].Index {
				t.Errorf("after %d: item %d at %d/%d, want %d/%d", after, i, got[i].Seq, got[i].Index, want[i].Seq, want[i].Index)
			}
		}
	}

	run, err := s.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if run.Started == nil || run.Finished == nil || run.Finished.Status != AgentSucceeded || run.Finished.CostUSD <= 0 || run.SessionID() == "" {
		t.Errorf("run = %+v / %+v, want it started and finished with a cost and a session", run.Started, run.Finished)
	}

	_, err = s.Events(ctx, c.ID, c.LastSeq+1)
	wantCode(t, err, EINVALID)
	_, err = s.Events(ctx, c.ID, -1)
	wantCode(t, err, EINVALID)
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestAgentService_RunSession(t *testing.T) {
	resume := func(project, token string) RunAgent {
		return RunAgent{ProjectID: project, ClientToken: token, Request: AgentRequest{Prompt: "go on", SessionID: "0b5c4f1e-6d0a-4e55-9c1b-2f7a3e8d9a01"}}
	}

	t.Run("ErrConflict", func(t *testing.T) {
		e, s := newAgentEnv(t)
		ctx := keyContext(t, writerKey)
		first, err := s.Run(ctx, resume("web", ""))
		if err != nil {
			t.Fatal(err)
		}
		if c := e.repo.command(first.Command.ID); c.AgentSession != "0b5c4f1e-6d0a-4e55-9c1b-2f7a3e8d9a01" {
			t.Fatalf("stored run resumes %q, want the session asked for", c.AgentSession)
		}
		for _, st := range []CommandStatus{CommandQueued, CommandRunning} {
			e.repo.set(func(r *commandRepo) { r.cmds[first.Command.ID].Status = st })
			_, err = s.Run(ctx, resume("web", ""))
			wantCode(t, err, ECONFLICT)
			if !strings.Contains(err.Error(), first.Command.ID) || !strings.Contains(err.Error(), string(st)) {
				t.Errorf("conflict %q does not name run %s and its status %s", err, first.Command.ID, st)
			}
		}
		entries := e.repo.audit.all()
		if last := entries[len(entries)-1]; last.Outcome == AuditSuccess || last.ErrorCode != ECONFLICT {
			t.Errorf("last audit entry %+v, want the refused run", last)
		}
		// Another project, another session, or a new session: free.
		for _, in := range []RunAgent{resume("api", ""), {ProjectID: "web", Request: AgentRequest{Prompt: "x", SessionID: "0b5c4f1e-6d0a-4e55-9c1b-2f7a3e8d9a02"}}, {ProjectID: "web", Request: AgentRequest{Prompt: "x"}}} {
			if _, err := s.Run(ctx, in); err != nil {
				t.Errorf("Run(%+v) = %v", in, err)
			}
		}
		// Ended, the session is free again.
		e.repo.set(func(r *commandRepo) { r.cmds[first.Command.ID].Status = CommandSucceeded })
		if _, err := s.Run(ctx, resume("web", "")); err != nil {
			t.Fatalf("Run after the session's run ended = %v", err)
		}
	})

	t.Run("RetryIsNotConflict", func(t *testing.T) {
		_, s := newAgentEnv(t)
		ctx := keyContext(t, writerKey)
		a, err := s.Run(ctx, resume("web", "tok"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := s.Run(ctx, resume("web", "tok"))
		if err != nil || b.Command.ID != a.Command.ID {
			t.Fatalf("retry = %v, %v; want run %s again", b, err, a.Command.ID)
		}
	})

	t.Run("ErrConflictRace", func(t *testing.T) {
		// A run of the session is queued by another process between the
		// check and the insert: the store refuses, and the error names it.
		e, s := newAgentEnv(t)
		ctx := keyContext(t, writerKey)
		var other *AgentRun
		e.repo.set(func(r *commandRepo) {
			r.beforeCreate = func(*Command) {
				if other == nil {
					other = &AgentRun{} // the run below creates too
					other = must(s.Run(ctx, resume("web", "")))
				}
			}
		})
		_, err := s.Run(ctx, resume("web", ""))
		wantCode(t, err, ECONFLICT)
		if other == nil || other.Command == nil || !strings.Contains(err.Error(), other.Command.ID) {
			t.Errorf("conflict %q does not name the run that won, %+v", err, other)
		}
	})
}
