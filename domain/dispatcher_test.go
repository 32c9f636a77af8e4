package domain

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestDispatcher_FinalStates(t *testing.T) {
	for _, tt := range []struct {
		name    string
		project string
		argv    []string
		script  execScript
		timeout time.Duration
		status  CommandStatus
		exit    *int
		signal  string
		reason  string // a substring
		output  string
		ctxEnd  bool
	}{
		{name: "OKSucceeded", argv: []string{"ok", "t"},
			script: execScript{steps: []execStep{{data: "hello\n"}, {stream: Stderr, data: "warn\n"}}},
			status: CommandSucceeded, exit: ptr(0), output: "hello\nwarn\n"},
		{name: "OKFailedExitCode", argv: []string{"fail", "t"},
			script: execScript{steps: []execStep{{stream: Stderr, data: "boom\n"}}, result: ExecResult{ExitCode: 3}},
			status: CommandFailed, exit: ptr(3), reason: "exited with status 3", output: "boom\n"},
		{name: "OKFailedSignal", argv: []string{"crash", "t"},
			script: execScript{result: ExecResult{ExitCode: -1, Signal: "SIGSEGV"}},
			status: CommandFailed, signal: "SIGSEGV", reason: "killed by SIGSEGV"},
		{name: "OKFailedProgramNotFound", argv: []string{"no-such-program", "t"},
			status: CommandFailed, reason: `program "no-such-program" not found`},
		{name: "OKFailedProjectNotRunning", project: "asleep", argv: []string{"ok", "t"},
			script: execScript{}, status: CommandFailed, reason: "project asleep is NOT_READY"},
		{name: "OKFailedProjectGone", project: "gone", argv: []string{"ok", "t"},
			script: execScript{}, status: CommandFailed, reason: `project "gone" not found`},
		{name: "OKFailedInternal", argv: []string{"broken", "t"},
			script: execScript{steps: []execStep{{data: "partial\n"}}, err: errors.New("spdy: stream reset by peer")},
			status: CommandFailed, reason: "internal error", output: "partial\n"},
		{name: "OKFailedUnavailable", argv: []string{"unavailable", "t"},
			script: execScript{err: Errorf(EUNAVAILABLE, "the Kubernetes API is unavailable")},
			status: CommandFailed, reason: "Kubernetes API is unavailable"},
		{name: "OKTimedOut", argv: []string{"hang", "t"}, timeout: 50 * time.Millisecond,
			script: execScript{steps: []execStep{{data: "working\n"}}, untilCancel: true},
			status: CommandTimedOut, signal: "SIGTERM", reason: "timed out after 50ms", output: "working\n", ctxEnd: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newCommandEnv(t)
			if tt.argv[0] != "no-such-program" {
				e.exec.program(tt.argv[0], tt.script)
			}
			project := orDefault(tt.project, "web")
			c := e.queue(t, &Command{ProjectID: project, Argv: tt.argv, Timeout: tt.timeout})
			e.startDispatcher(t, testDispatcherConfig())
			got := e.waitFinal(t, c.ID)

			if got.Status != tt.status || got.Signal != tt.signal || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("got %s signal %q reason %q; want %s signal %q reason ~%q", got.Status, got.Signal, got.Reason, tt.status, tt.signal, tt.reason)
			}
			if (got.ExitCode == nil) != (tt.exit == nil) || (got.ExitCode != nil && *got.ExitCode != *tt.exit) {
				t.Errorf("exit code = %v, want %v", deref(got.ExitCode), deref(tt.exit))
			}
			if tt.reason == "" && got.Reason != "" {
				t.Errorf("reason = %q, want none", got.Reason)
			}
			if got.StartedAt == nil || got.FinishedAt == nil || got.FinishedAt.Before(*got.StartedAt) || got.Owner != "dispatcher-1" {
				t.Errorf("started %v finished %v owner %q", got.StartedAt, got.FinishedAt, got.Owner)
			}
			stored := e.repo.stored(c.ID)
			if out := joined(stored, ""); out != tt.output {
				t.Errorf("output = %q, want %q", out, tt.output)
			}
			if got.OutputBytes != int64(len(tt.output)) || got.LastSeq != int64(len(stored)) || got.Truncated {
				t.Errorf("OutputBytes %d LastSeq %d Truncated %v", got.OutputBytes, got.LastSeq, got.Truncated)
			}
			if e.exec.sawCtxEnd("t") != tt.ctxEnd {
				t.Errorf("process saw its context end: %v, want %v", e.exec.sawCtxEnd("t"), tt.ctxEnd)
			}
			for _, topic := range []string{CommandTopic(c.ID), ProjectTopic(project)} {
				e.wantStatuses(t, topic, c.ID, CommandRunning, tt.status)
			}
			e.repo.checkOrdering(t)
		})
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestDispatcher_StatusEvents follows one command from Execute to its end:
// QUEUED, RUNNING, SUCCEEDED on both the command's and the project's topic,
// each event carrying the command as it was then.
func TestDispatcher_StatusEvents(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("echo", execScript{steps: []execStep{{data: "a\n"}, {data: "b\n"}}})
	// Queued before the dispatcher starts: see TestCommandService_Events_Order.
	c := mustExecute(t, e, ExecuteCommand{ProjectID: "api", Argv: []string{"echo", "t"}})
	e.startDispatcher(t, testDispatcherConfig())
	e.waitFinal(t, c.ID)
	waitFor(t, "the final status event", func() bool { return len(e.hub.statuses(ProjectTopic("api"), c.ID)) == 3 })
	stored := e.repo.stored(c.ID)
	checkChunks(t, stored, c.ID, DefaultOutputConfig.MaxChunk)
	if got := joined(stored, Stdout); got != "a\nb\n" {
		t.Fatalf("stored %q, want %q", got, "a\nb\n")
	}
	lastSeq := stored[len(stored)-1].Seq
	for _, topic := range []string{CommandTopic(c.ID), ProjectTopic("api")} {
		var events []Event
		for _, ev := range e.hub.published(topic) {
			if ev.Kind == EventStatus {
				events = append(events, ev)
			}
		}
		if len(events) != 3 {
			t.Fatalf("%s: %d status events, want 3", topic, len(events))
		}
		queued, running, done := events[0].Command, events[1].Command, events[2].Command
		if queued.Status != CommandQueued || running.Status != CommandRunning || done.Status != CommandSucceeded {
			t.Fatalf("%s statuses = %s %s %s", topic, queued.Status, running.Status, done.Status)
		}
		if running.StartedAt == nil || running.Owner != "dispatcher-1" || running.LeaseExpiresAt == nil {
			t.Errorf("RUNNING event command = %+v", running)
		}
		// "a\n" and "b\n" are one chunk or two, as storage kept up.
		if done.LastSeq != lastSeq || events[2].UpTo != lastSeq || done.OutputBytes != 4 || done.FinishedAt == nil || done.ExitCode == nil {
			t.Errorf("final event = %+v, command %+v; want LastSeq and UpTo %d, 4 bytes", events[2], done, lastSeq)
		}
	}
}

// TestDispatcher_FinalAfterLastChunk: with slow storage, the final state
// is still written only after every chunk is stored.
func TestDispatcher_FinalAfterLastChunk(t *testing.T) {
	e := newCommandEnv(t)
	e.repo.set(func(r *commandRepo) {
		r.appendHook = func([]OutputChunk) error { time.Sleep(time.Millisecond); return nil }
	})
	steps := lines(Stdout, 300)
	for i := 0; i < len(steps); i += 50 {
		steps[i].pause = time.Millisecond
	}
	steps = append(steps, execStep{stream: Stderr, data: "no newline at the end"})
	e.exec.program("chatty", execScript{steps: steps, result: ExecResult{ExitCode: 1}})
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"chatty", "t"}})
	e.startDispatcher(t, testDispatcherConfig())
	got := e.waitFinal(t, c.ID)
	stored := e.repo.stored(c.ID)
	if got.Status != CommandFailed || got.LastSeq != int64(len(stored)) || stored[len(stored)-1].Data != "no newline at the end" {
		t.Errorf("got %s LastSeq %d with %d chunks stored, last %q", got.Status, got.LastSeq, len(stored), stored[len(stored)-1].Data)
	}
	e.repo.checkOrdering(t)
}

// TestDispatcher_Limits: one process runs at most Concurrency commands, and
// a project at most PerProject, counting every process's commands.
func TestDispatcher_Limits(t *testing.T) {
	t.Run("OKPerProject", func(t *testing.T) {
		e := newCommandEnv(t)
		gate := make(chan struct{})
		e.exec.program("wait", execScript{steps: []execStep{{wait: gate, data: "done\n"}}})
		var ids []string
		for _, p := range []string{"web", "api", "db", "web", "api", "db"} {
			ids = append(ids, e.queue(t, &Command{ProjectID: p, Argv: []string{"wait", p}}).ID)
		}
		cfg := testDispatcherConfig()
		cfg.Concurrency, cfg.PerProject = 4, 1
		e.startDispatcher(t, cfg)
		waitFor(t, "three commands to run", func() bool { return e.exec.runningNow() == 3 })
		// Give the dispatcher, which has a free slot, several more tries.
		claims := e.repo.claimCount()
		waitFor(t, "more claims", func() bool { return e.repo.claimCount() >= claims+3 })
		if n := e.exec.runningNow(); n != 3 {
			t.Errorf("%d commands running, want 3 (one per project)", n)
		}
		started := e.exec.startedTags()
		slices.Sort(started)
		if !slices.Equal(started, []string{"api", "db", "web"}) {
			t.Errorf("started %v, want one per project", started)
		}
		close(gate)
		for _, id := range ids {
			if c := e.waitFinal(t, id); c.Status != CommandSucceeded {
				t.Errorf("%s: %s (%s)", id, c.Status, c.Reason)
			}
		}
		if total, perProject := e.exec.maxima(); total > 3 || perProject != 1 {
			t.Errorf("at most %d at once, %d per project; want 3 and 1", total, perProject)
		}
		e.repo.checkOrdering(t)
	})

	t.Run("OKConcurrency", func(t *testing.T) {
		e := newCommandEnv(t)
		gate := make(chan struct{})
		e.exec.program("wait", execScript{steps: []execStep{{wait: gate}}})
		var ids []string
		for range 6 {
			ids = append(ids, e.queue(t, &Command{ProjectID: "web", Argv: []string{"wait", "t"}}).ID)
		}
		cfg := testDispatcherConfig()
		cfg.Concurrency, cfg.PerProject = 2, 10
		e.startDispatcher(t, cfg)
		waitFor(t, "two commands to run", func() bool { return e.exec.runningNow() == 2 })
		close(gate)
		for _, id := range ids {
			e.waitFinal(t, id)
		}
		if total, _ := e.exec.maxima(); total != 2 {
			t.Errorf("at most %d at once, want 2", total)
		}
	})

	t.Run("OKPerProjectAcrossProcesses", func(t *testing.T) {
		e := newCommandEnv(t)
		e.exec.program("ok", execScript{})
		elsewhere := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "elsewhere"}})
		claimAll(t, e, "other-process")
		web := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "web"}})
		api := e.queue(t, &Command{ProjectID: "api", Argv: []string{"ok", "api"}})
		e.startDispatcher(t, testDispatcherConfig())
		e.waitFinal(t, api.ID)
		claims := e.repo.claimCount()
		waitFor(t, "more claims", func() bool { return e.repo.claimCount() >= claims+3 })
		if s := e.repo.status(web.ID); s != CommandQueued {
			t.Fatalf("web command is %s while another process runs one in web", s)
		}
		if _, err := e.repo.FinishCommand(context.Background(), e.repo.command(elsewhere.ID).Lease(), Finish{Status: CommandSucceeded, ExitCode: ptr(0)}, nil); err != nil {
			t.Fatal(err)
		}
		if c := e.waitFinal(t, web.ID); c.Status != CommandSucceeded {
			t.Errorf("web command %s", c.Status)
		}
	})
}

// TestDispatcher_Priority: highest priority first, FIFO within one.
func TestDispatcher_Priority(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{})
	var ids []string
	for _, q := range []struct {
		tag string
		p   Priority
	}{
		{"low1", PriorityLow}, {"normal1", PriorityNormal}, {"urgent1", PriorityUrgent},
		{"high1", PriorityHigh}, {"normal2", PriorityNormal}, {"urgent2", PriorityUrgent}, {"low2", PriorityLow},
	} {
		ids = append(ids, e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", q.tag}, Priority: q.p}).ID)
	}
	cfg := testDispatcherConfig()
	cfg.Concurrency = 1
	e.startDispatcher(t, cfg)
	for _, id := range ids {
		e.waitFinal(t, id)
	}
	want := []string{"urgent1", "urgent2", "high1", "normal1", "normal2", "low1", "low2"}
	if got := e.exec.startedTags(); !slices.Equal(got, want) {
		t.Errorf("run order %v, want %v", got, want)
	}
}

// TestDispatcher_Wakeups: a queued command and a freed slot are acted on at
// once, not at the next poll (here an hour away).
func TestDispatcher_Wakeups(t *testing.T) {
	e := newCommandEnv(t)
	gate := make(chan struct{})
	e.exec.program("wait", execScript{steps: []execStep{{wait: gate}}})
	e.exec.program("ok", execScript{})
	cfg := testDispatcherConfig()
	cfg.Concurrency, cfg.PollInterval, cfg.LeaseTTL = 1, time.Hour, time.Hour
	e.startDispatcher(t, cfg)

	first := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"wait", "first"}})
	waitFor(t, "the queued command to start", func() bool { return e.exec.hasStarted("first") })
	second := mustExecute(t, e, ExecuteCommand{ProjectID: "api", Argv: []string{"ok", "second"}})
	close(gate)
	e.waitFinal(t, first.ID)
	if c := e.waitFinal(t, second.ID); c.Status != CommandSucceeded {
		t.Errorf("second: %s", c.Status)
	}
}

// TestDispatcher_ClaimFails: a failing claim is retried at the next poll.
func TestDispatcher_ClaimFails(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{})
	e.repo.set(func(r *commandRepo) { r.claimErr = errors.New("db down") })
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "t"}})
	e.startDispatcher(t, testDispatcherConfig())
	waitFor(t, "failed claims", func() bool { return e.repo.claimCount() >= 3 })
	e.repo.set(func(r *commandRepo) { r.claimErr = nil })
	if got := e.waitFinal(t, c.ID); got.Status != CommandSucceeded {
		t.Errorf("status %s", got.Status)
	}
}

func TestDispatcher_Cancel(t *testing.T) {
	t.Run("OKViaHub", func(t *testing.T) {
		// Leases are never renewed in this test, so only the hub's cancel
		// event can stop the command.
		e := newCommandEnv(t)
		e.exec.program("hang", execScript{steps: []execStep{{data: "started\n"}}, untilCancel: true})
		cfg := testDispatcherConfig()
		cfg.LeaseTTL = time.Hour
		// Queued before the dispatcher starts: see TestCommandService_Events_Order.
		c := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"hang", "t"}})
		e.startDispatcher(t, cfg)
		waitFor(t, "the command to start", func() bool { return e.exec.hasStarted("t") })
		got, err := e.svc.Cancel(keyContext(t, writerKey), c.ID)
		if err != nil || got.Status != CommandRunning || !got.CancelRequested {
			t.Fatalf("Cancel = %+v, %v", got, err)
		}
		fin := e.waitFinal(t, c.ID)
		if fin.Status != CommandCancelled || fin.Signal != "SIGTERM" || fin.ExitCode != nil || fin.Reason == "" {
			t.Errorf("final = %s signal %q exit %v reason %q", fin.Status, fin.Signal, deref(fin.ExitCode), fin.Reason)
		}
		if !e.exec.sawCtxEnd("t") {
			t.Error("the process was not stopped")
		}
		e.wantStatuses(t, CommandTopic(c.ID), c.ID, CommandQueued, CommandRunning, CommandCancelled)
		e.repo.checkOrdering(t)
	})

	t.Run("OKViaLeaseRenewal", func(t *testing.T) {
		// Another process flagged the command in storage; no hub event
		// reaches this one.
		e := newCommandEnv(t)
		e.exec.program("hang", execScript{untilCancel: true})
		cfg := testDispatcherConfig()
		cfg.LeaseTTL = 150 * time.Millisecond
		e.startDispatcher(t, cfg)
		c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"hang", "t"}})
		waitFor(t, "the command to start", func() bool { return e.exec.hasStarted("t") })
		if _, err := e.repo.RequestCancel(context.Background(), c.ID, "cancelled elsewhere", time.Now(), nil); err != nil {
			t.Fatal(err)
		}
		if fin := e.waitFinal(t, c.ID); fin.Status != CommandCancelled {
			t.Errorf("final = %s (%s)", fin.Status, fin.Reason)
		}
		if !e.exec.sawCtxEnd("t") {
			t.Error("the process was not stopped")
		}
	})

	t.Run("OKIgnoresSIGTERM", func(t *testing.T) {
		e := newCommandEnv(t)
		e.exec.program("stubborn", execScript{untilCancel: true, ignoreCancel: 100 * time.Millisecond})
		e.startDispatcher(t, testDispatcherConfig())
		c := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"stubborn", "t"}})
		waitFor(t, "the command to start", func() bool { return e.exec.hasStarted("t") })
		if _, err := e.svc.Cancel(keyContext(t, writerKey), c.ID); err != nil {
			t.Fatal(err)
		}
		fin := e.waitFinal(t, c.ID)
		if fin.Status != CommandCancelled || fin.Signal != "SIGKILL" {
			t.Errorf("final = %s signal %q", fin.Status, fin.Signal)
		}
		// What it wrote while dying is stored before the final state.
		if out := joined(e.repo.stored(c.ID), ""); out != "still here\n" {
			t.Errorf("output = %q", out)
		}
		e.repo.checkOrdering(t)
	})

	t.Run("OKQueuedNeverRuns", func(t *testing.T) {
		e := newCommandEnv(t)
		e.exec.program("ok", execScript{})
		c := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"ok", "t"}})
		if _, err := e.svc.Cancel(keyContext(t, writerKey), c.ID); err != nil {
			t.Fatal(err)
		}
		e.startDispatcher(t, testDispatcherConfig())
		waitFor(t, "claims", func() bool { return e.repo.claimCount() >= 3 })
		if e.exec.hasStarted("t") || e.repo.status(c.ID) != CommandCancelled {
			t.Errorf("a cancelled command ran: status %s", e.repo.status(c.ID))
		}
	})
}

// TestDispatcher_Shutdown: when Run's context ends, the running commands
// are stopped and recorded INTERRUPTED before Run returns.
func TestDispatcher_Shutdown(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("hang", execScript{untilCancel: true})
	e.exec.program("stubborn", execScript{untilCancel: true, ignoreCancel: 200 * time.Millisecond})
	a := e.queue(t, &Command{ProjectID: "web", Argv: []string{"hang", "a"}})
	b := e.queue(t, &Command{ProjectID: "api", Argv: []string{"stubborn", "b"}})
	_, stop := e.startDispatcher(t, testDispatcherConfig())
	waitFor(t, "both commands to start", func() bool { return e.exec.runningNow() == 2 })
	stop()
	for _, c := range []*Command{a, b} {
		got := e.repo.command(c.ID)
		if got.Status != CommandInterrupted || !strings.Contains(got.Reason, "shut down") {
			t.Errorf("%s after Run returned: %s (%s), want INTERRUPTED", c.Argv[1], got.Status, got.Reason)
		}
		if st := e.hub.statuses(CommandTopic(c.ID), c.ID); !slices.Equal(st, []CommandStatus{CommandRunning, CommandInterrupted}) {
			t.Errorf("%s statuses = %v", c.Argv[1], st)
		}
	}
	if n := e.exec.runningNow(); n != 0 {
		t.Errorf("%d processes still running after Run returned", n)
	}
	// Nothing is claimed after Run returned.
	late := e.queue(t, &Command{ProjectID: "db", Argv: []string{"hang", "late"}})
	if s := e.repo.status(late.ID); s != CommandQueued {
		t.Errorf("command queued after shutdown is %s", s)
	}
	e.repo.checkOrdering(t)
}

// TestDispatcher_ExpireLeases: a command whose process died (its lease ran
// out) ends INTERRUPTED, and subscribers are told; it is not re-run.
func TestDispatcher_ExpireLeases(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{})
	past := time.Now().Add(-time.Minute)
	dead := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "dead"}})
	e.repo.set(func(r *commandRepo) {
		c := r.cmds[dead.ID]
		c.Status, c.Owner, c.StartedAt, c.LeaseExpiresAt = CommandRunning, "dead-process", &past, &past
	})
	// The dead process stored two chunks before it died.
	if err := e.repo.AppendOutput(context.Background(), Lease{}, []OutputChunk{
		{CommandID: dead.ID, Seq: 1, Stream: Stdout, Data: "one\n", At: past},
		{CommandID: dead.ID, Seq: 2, Stream: Stderr, Data: "two\n", At: past},
	}); err != nil {
		t.Fatal(err)
	}
	cfg := testDispatcherConfig()
	cfg.LeaseTTL = 150 * time.Millisecond
	e.startDispatcher(t, cfg)
	got := e.waitFinal(t, dead.ID)
	if got.Status != CommandInterrupted || got.Reason == "" {
		t.Errorf("got %s (%s)", got.Status, got.Reason)
	}
	// Its end counts the output it stored.
	if got.LastSeq != 2 || got.OutputBytes != 8 {
		t.Errorf("interrupted with LastSeq %d OutputBytes %d, want 2 and 8 from its stored output", got.LastSeq, got.OutputBytes)
	}
	for _, topic := range []string{CommandTopic(dead.ID), ProjectTopic("web")} {
		waitFor(t, "the INTERRUPTED event on "+topic, func() bool {
			return slices.Contains(e.hub.statuses(topic, dead.ID), CommandInterrupted)
		})
	}
	if e.exec.hasStarted("dead") {
		t.Error("an interrupted command was re-run")
	}
}

// TestDispatcher_LostLeaseStopsProcess: when this process's own lease on a
// command expires (renewals failed, say the database was unreachable), the
// command is INTERRUPTED in storage; the process must then stop it, or it
// keeps running and writing output after its final state.
func TestDispatcher_LostLeaseStopsProcess(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("hang", execScript{steps: []execStep{{data: "before\n"}}, untilCancel: true})
	e.repo.set(func(r *commandRepo) { r.renewErr = errors.New("db unreachable") })
	cfg := testDispatcherConfig()
	cfg.LeaseTTL = 150 * time.Millisecond
	e.startDispatcher(t, cfg)
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"hang", "t"}})
	waitFor(t, "the output to be stored", func() bool { return len(e.repo.stored(c.ID)) == 1 })

	// Another process, finding the lease expired, ends the command; this
	// one cannot renew meanwhile, and must not expire its own leases.
	time.Sleep(2 * cfg.LeaseTTL) // let the unrenewed lease run out
	if got, _ := e.repo.ExpireLeases(context.Background(), time.Now().UTC(), nil); len(got) != 1 {
		t.Fatalf("another process expired %d commands, want the one whose lease ran out", len(got))
	}
	if e.exec.sawCtxEnd("t") {
		t.Fatal("the process was stopped before this dispatcher could know the lease was lost")
	}
	e.repo.set(func(r *commandRepo) { r.renewErr = nil })
	waitFor(t, "the process to be stopped at the next renewal", func() bool { return e.exec.sawCtxEnd("t") })
	waitFor(t, "the process to end", func() bool { return e.exec.runningNow() == 0 })
	if got := e.repo.command(c.ID); got.Status != CommandInterrupted || got.Reason != leaseExpiredReason {
		t.Errorf("stored %s (%s), want the other process's INTERRUPTED to stand", got.Status, got.Reason)
	}
	e.repo.checkOrdering(t)
}

// TestDispatcher_LostLeaseFencesOutput: a process whose lease another
// process ended stores no more output, and its command is stopped as soon as
// a write finds out, even while renewals fail.
func TestDispatcher_LostLeaseFencesOutput(t *testing.T) {
	e := newCommandEnv(t)
	gate := make(chan struct{})
	e.exec.program("late", execScript{steps: []execStep{{data: "before\n"}, {wait: gate, data: "after\n"}}, untilCancel: true})
	e.repo.set(func(r *commandRepo) { r.renewErr = errors.New("db unreachable") })
	cfg := testDispatcherConfig()
	cfg.LeaseTTL = 150 * time.Millisecond
	e.startDispatcher(t, cfg)
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"late", "t"}})
	waitFor(t, "the output to be stored", func() bool { return len(e.repo.stored(c.ID)) == 1 })
	time.Sleep(2 * cfg.LeaseTTL) // let the unrenewed lease run out
	if got, _ := e.repo.ExpireLeases(context.Background(), time.Now().UTC(), nil); len(got) != 1 {
		t.Fatalf("another process expired %d commands, want 1", len(got))
	}
	close(gate) // the process writes again
	waitFor(t, "the process to be stopped by the fenced write", func() bool { return e.exec.sawCtxEnd("t") })
	waitFor(t, "the process to end", func() bool { return e.exec.runningNow() == 0 })
	got := e.repo.command(c.ID)
	if stored := e.repo.stored(c.ID); len(stored) != 1 || got.LastSeq != 1 {
		t.Errorf("stored %d chunks, lastSeq %d: want only the chunk stored under the lease", len(stored), got.LastSeq)
	}
	if got.Status != CommandInterrupted || got.Reason != leaseExpiredReason {
		t.Errorf("stored %s (%s), want the other process's INTERRUPTED to stand", got.Status, got.Reason)
	}
	e.repo.checkOrdering(t)
}

// TestDispatcher_FinishRetried: a command's end that storage refuses, for
// longer than the lease lasts, is tried again until it is stored: the
// command ends as it did, never INTERRUPTED, and meanwhile storage writes
// report DOWN.
func TestDispatcher_FinishRetried(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{steps: []execStep{{data: "done\n"}}})
	var tries atomic.Int32
	refuse := atomic.Bool{}
	refuse.Store(true)
	e.repo.set(func(r *commandRepo) {
		r.finishHook = func(string) error {
			tries.Add(1)
			if refuse.Load() {
				return errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")
			}
			return nil
		}
	})
	cfg := testDispatcherConfig()
	cfg.LeaseTTL = 150 * time.Millisecond
	cfg.Writes = new(WriteHealth)
	e.startDispatcher(t, cfg)
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "t"}})
	// Tries back off from 100 ms: five take well over the lease's length.
	waitFor(t, "five tries", func() bool { return tries.Load() >= 5 })
	if h := cfg.Writes.Check(context.Background()); h.Status != ComponentDown {
		t.Errorf("storage writes %s while the end is refused, want DOWN", h.Status)
	}
	// Another process looking for expired leases finds this one renewed.
	if got, _ := e.repo.ExpireLeases(context.Background(), time.Now().UTC(), nil); len(got) != 0 {
		t.Fatalf("the lease of a command whose end is being retried expired")
	}
	refuse.Store(false)
	got := e.waitFinal(t, c.ID)
	if got.Status != CommandSucceeded || got.ExitCode == nil || *got.ExitCode != 0 || got.LastSeq != 1 {
		t.Errorf("stored %s exit %v lastSeq %d, want SUCCEEDED, 0, 1", got.Status, got.ExitCode, got.LastSeq)
	}
	if h := cfg.Writes.Check(context.Background()); h.Status != ComponentOK {
		t.Errorf("storage writes %s (%s) once the end is stored, want OK", h.Status, h.Detail)
	}
	e.repo.checkOrdering(t)
}

// TestDispatcher_ZeroTimeout: Command.Timeout documents 0 as "the server
// default", not "no time at all".
func TestDispatcher_ZeroTimeout(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{steps: []execStep{{data: "hi\n"}}})
	c := &Command{ID: NewID(time.Now()), ProjectID: "web", Argv: []string{"ok", "t"}, Status: CommandQueued, CreatedAt: time.Now().UTC()}
	if err := e.repo.CreateCommand(context.Background(), c, nil); err != nil {
		t.Fatal(err)
	}
	e.startDispatcher(t, testDispatcherConfig())
	if got := e.waitFinal(t, c.ID); got.Status != CommandSucceeded {
		t.Errorf("a command with Timeout 0 ended %s (%s), want SUCCEEDED", got.Status, got.Reason)
	}
}

func TestNewDispatcher_Defaults(t *testing.T) {
	e := newCommandEnv(t)
	d := NewDispatcher(e.repo, e.projects, e.exec, e.hub, nil, DispatcherConfig{})
	if d.cfg.Concurrency != DefaultCommandLimits.Concurrency || d.cfg.PerProject != DefaultCommandLimits.PerProject ||
		d.cfg.LeaseTTL <= 0 || d.cfg.PollInterval <= 0 || d.cfg.Owner == "" || d.log == nil {
		t.Errorf("defaults = %+v", d.cfg)
	}
	if other := NewDispatcher(e.repo, e.projects, e.exec, e.hub, nil, DispatcherConfig{}); other.cfg.Owner == d.cfg.Owner {
		t.Error("two dispatchers got the same owner name")
	}
}

// TestDispatcher_Broadcast: status and output events also go to other
// processes; a failing broadcast changes nothing here.
func TestDispatcher_Broadcast(t *testing.T) {
	e := newCommandEnv(t)
	bcast := &fakeBroadcaster{err: errors.New("notify: connection refused")}
	e.bcast = bcast
	e.exec.program("echo", execScript{steps: []execStep{{data: "a\n"}, {pause: 5 * time.Millisecond, data: "b\n"}}})
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"echo", "t"}})
	e.startDispatcher(t, testDispatcherConfig())
	if got := e.waitFinal(t, c.ID); got.Status != CommandSucceeded {
		t.Fatalf("status %s", got.Status)
	}
	waitFor(t, "the final status broadcast", func() bool {
		for _, b := range bcast.all() {
			if b.topic == ProjectTopic("web") && b.e.Kind == EventStatus && b.e.Command.Status.Final() {
				return true
			}
		}
		return false
	})
	var upTo int64
	var statuses []CommandStatus
	for _, b := range bcast.all() {
		switch {
		case b.topic == CommandTopic(c.ID) && b.e.Kind == EventOutput:
			if b.e.UpTo <= upTo {
				t.Errorf("output broadcast UpTo %d after %d", b.e.UpTo, upTo)
			}
			upTo = b.e.UpTo
		case b.topic == CommandTopic(c.ID) && b.e.Kind == EventStatus:
			statuses = append(statuses, b.e.Command.Status)
		}
	}
	if upTo != 2 || !slices.Equal(statuses, []CommandStatus{CommandRunning, CommandSucceeded}) {
		t.Errorf("broadcast output up to %d and statuses %v; all: %v", upTo, statuses, bcast.topics())
	}
}

// TestDispatcher_QueueSubscriptionDropped: if the hub drops the
// dispatcher's queue subscription (it fell behind), it subscribes again
// and still acts on cancels.
func TestDispatcher_QueueSubscriptionDropped(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("hang", execScript{untilCancel: true})
	entered, gate := make(chan struct{}, 1), make(chan struct{})
	cfg := testDispatcherConfig()
	cfg.LeaseTTL = time.Hour // cancels can come only through the hub
	e.startDispatcher(t, cfg)
	e.repo.set(func(r *commandRepo) {
		r.claimHook = func() {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-gate
		}
	})
	<-entered // the dispatcher's loop is stuck in a claim
	for range 1100 {
		e.hub.Publish(QueueTopic, Event{Kind: EventQueued})
	}
	if e.hub.dropCount() == 0 || e.hub.subscribers(QueueTopic) != 0 {
		t.Fatal("the hub did not drop the stuck dispatcher")
	}
	e.repo.set(func(r *commandRepo) { r.claimHook = nil })
	close(gate)
	waitFor(t, "the dispatcher to subscribe again", func() bool { return e.hub.subscribers(QueueTopic) == 1 })

	c := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"hang", "t"}})
	waitFor(t, "the command to start", func() bool { return e.exec.hasStarted("t") })
	if _, err := e.svc.Cancel(keyContext(t, writerKey), c.ID); err != nil {
		t.Fatal(err)
	}
	if got := e.waitFinal(t, c.ID); got.Status != CommandCancelled {
		t.Errorf("status %s", got.Status)
	}
}

// TestDispatcher_FinishConflict: when another process already ended the
// command (its lease expired there), the stored end stands and this
// dispatcher publishes no end of its own.
func TestDispatcher_FinishConflict(t *testing.T) {
	e := newCommandEnv(t)
	gate := make(chan struct{})
	e.exec.program("slow", execScript{steps: []execStep{{data: "x\n"}, {wait: gate}}})
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"slow", "t"}})
	d, _ := e.startDispatcher(t, testDispatcherConfig())
	waitFor(t, "the output to be stored", func() bool { return len(e.repo.stored(c.ID)) == 1 })
	if _, err := e.repo.ExpireLeases(context.Background(), time.Now().Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	close(gate)
	waitFor(t, "the process to end", func() bool { return e.exec.runningNow() == 0 })
	// The run is over once its slot is free.
	waitFor(t, "the slot to be freed", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return len(d.running) == 0
	})
	if got := e.repo.status(c.ID); got != CommandInterrupted {
		t.Errorf("status %s, want INTERRUPTED to stand", got)
	}
	if st := e.hub.statuses(CommandTopic(c.ID), c.ID); slices.Contains(st, CommandSucceeded) {
		t.Errorf("statuses %v: SUCCEEDED published for an INTERRUPTED command", st)
	}
}

// TestDispatcher_FinishedAfterOutput: a command does not finish before the
// output it wrote; with a clock that ticks on every reading, the last
// chunk's time must not be after FinishedAt.
func TestDispatcher_FinishedAfterOutput(t *testing.T) {
	e := newCommandEnv(t)
	clk := newClock()
	e.now = func() time.Time { clk.Advance(time.Millisecond); return clk.Now() }
	e.exec.program("prompt", execScript{steps: []execStep{{data: "line\nno newline"}}})
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"prompt", "t"}})
	cfg := testDispatcherConfig()
	cfg.Output.FlushDelay = time.Hour
	e.startDispatcher(t, cfg)
	got := e.waitFinal(t, c.ID)
	for _, ch := range e.repo.stored(c.ID) {
		if ch.At.After(*got.FinishedAt) {
			t.Errorf("chunk %d %q at %s, after the command finished at %s", ch.Seq, ch.Data, ch.At, got.FinishedAt)
		}
	}
}

// TestDispatcher_TakesOverPredecessor: the commands an ended predecessor
// held are interrupted as the dispatcher starts, not when their leases
// expire, and their project's slot runs queued work at once; a live
// process's commands are left alone.
func TestDispatcher_TakesOverPredecessor(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{steps: []execStep{{data: "hi\n"}}})
	ctx, now := context.Background(), time.Now().UTC()
	claim := func(owner, project string) *Command {
		c := e.queue(t, &Command{ProjectID: project, Argv: []string{"ok", owner}})
		got, err := e.repo.ClaimCommands(ctx, ClaimRequest{Owner: owner, Max: 1, LeaseUntil: now.Add(time.Hour), Now: now})
		if err != nil || len(got) != 1 || got[0].ID != c.ID {
			t.Fatalf("claim for %s = %v, %v", owner, got, err)
		}
		return c
	}
	dead, alive := claim("host/1.100/a", "web"), claim("host/2.200/b", "api")
	queued := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "next"}})
	cfg := testDispatcherConfig()
	cfg.Gone = func(owner string) bool { return owner == "host/1.100/a" }
	e.startDispatcher(t, cfg)
	if got := e.waitFinal(t, dead.ID); got.Status != CommandInterrupted || got.Reason != takenOverReason {
		t.Errorf("the ended predecessor's command is %s (%s), want INTERRUPTED as taken over", got.Status, got.Reason)
	}
	if got := e.waitFinal(t, queued.ID); got.Status != CommandSucceeded {
		t.Errorf("the command queued behind it %s, want SUCCEEDED", got.Status)
	}
	if got := e.repo.command(alive.ID); got.Status != CommandRunning {
		t.Errorf("a live process's command is %s, want it RUNNING still", got.Status)
	}
}

// memJournal is a FinishJournal in memory.
type memJournal struct {
	mu   sync.Mutex
	kept map[string]PendingFinish
}

func (j *memJournal) Keep(p PendingFinish) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.kept == nil {
		j.kept = map[string]PendingFinish{}
	}
	j.kept[p.Lease.CommandID] = p
	return nil
}

func (j *memJournal) Drop(id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	delete(j.kept, id)
	return nil
}

func (j *memJournal) Pending() ([]PendingFinish, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Collect(maps.Values(j.kept)), nil
}

func (j *memJournal) len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.kept)
}

// TestDispatcher_ResultKeptAcrossRestart: a command's end that storage
// refuses until its dispatcher stops is kept in the journal, and the next
// dispatcher on the machine stores it before taking the ended process's
// commands over: the command ends as it did, never INTERRUPTED.
func TestDispatcher_ResultKeptAcrossRestart(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{steps: []execStep{{data: "done\n"}}})
	var refuse atomic.Bool
	refuse.Store(true)
	e.repo.set(func(r *commandRepo) {
		r.finishHook = func(string) error {
			if refuse.Load() {
				return errors.New("connection refused")
			}
			return nil
		}
	})
	journal := new(memJournal)
	cfg := testDispatcherConfig()
	cfg.LeaseTTL, cfg.FinishGrace, cfg.Journal = time.Hour, 50*time.Millisecond, journal
	_, stop := e.startDispatcher(t, cfg)
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "t"}})
	waitFor(t, "the refused end to be kept", func() bool { return journal.len() == 1 })
	stop()
	if got := e.repo.command(c.ID); got.Status != CommandRunning {
		t.Fatalf("after the first dispatcher stopped the command is %s, want RUNNING (its end unrecorded)", got.Status)
	}

	refuse.Store(false)
	next := testDispatcherConfig()
	next.Owner, next.Journal = "dispatcher-2", journal
	next.Gone = func(owner string) bool { return owner == cfg.Owner }
	e.startDispatcher(t, next)
	got := e.waitFinal(t, c.ID)
	if got.Status != CommandSucceeded || got.ExitCode == nil || *got.ExitCode != 0 || got.Owner != cfg.Owner {
		t.Errorf("stored %s exit %v by %s, want SUCCEEDED, 0, as its own process ended it", got.Status, got.ExitCode, got.Owner)
	}
	if journal.len() != 0 {
		t.Errorf("%d ends still kept once stored", journal.len())
	}
}

// TestDispatcher_ClaimReplyLost: a claim that took a command but whose reply
// was lost (the connection broke as it committed) does not leave the
// command to end INTERRUPTED unrun: the dispatcher puts it back in the queue
// and runs it.
func TestDispatcher_ClaimReplyLost(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{steps: []execStep{{data: "hi\n"}}})
	e.repo.set(func(r *commandRepo) { r.claimLost = 1 })
	cfg := testDispatcherConfig()
	cfg.LeaseTTL = time.Hour // only a release can free it in time
	e.startDispatcher(t, cfg)
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "t"}})
	if got := e.waitFinal(t, c.ID); got.Status != CommandSucceeded || got.LeaseEpoch != 2 {
		t.Errorf("ended %s (%s) with epoch %d, want SUCCEEDED on the second claim", got.Status, got.Reason, got.LeaseEpoch)
	}
	if n := len(e.exec.startedTags()); n != 1 {
		t.Errorf("started %d times, want once", n)
	}
}

// TestDispatcher_EndDecidedAtExit: a process that exited 0 while its output
// waits for storage ends SUCCEEDED, even when the server shuts down while
// that output is still being held.
func TestDispatcher_EndDecidedAtExit(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("ok", execScript{steps: []execStep{{data: "done\n"}}})
	e.repo.set(func(r *commandRepo) {
		r.appendHook = func([]OutputChunk) error { return errors.New("disk full") }
	})
	cfg := testDispatcherConfig()
	cfg.FinishGrace = 100 * time.Millisecond
	_, stop := e.startDispatcher(t, cfg)
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"ok", "t"}})
	waitFor(t, "the process to exit", func() bool { return slices.Contains(e.exec.finishedTags(), "t") })
	stop()
	got := e.waitFinal(t, c.ID)
	if got.Status != CommandSucceeded || got.ExitCode == nil || *got.ExitCode != 0 || got.LostBytes == 0 {
		t.Errorf("stored %s (%s) exit %v, lost %d; want SUCCEEDED with exit 0 and its output counted lost", got.Status, got.Reason, got.ExitCode, got.LostBytes)
	}
}

// TestDispatcher_ExpiresAfterALeaseOfStorage: a dispatcher that starts (or
// sees storage come back) expires nobody's lease until storage has answered
// it for a whole LeaseTTL, so an end that another process is still retrying
// or replaying is stored, not beaten to it by an INTERRUPTED.
func TestDispatcher_ExpiresAfterALeaseOfStorage(t *testing.T) {
	e := newCommandEnv(t)
	ctx, now := context.Background(), time.Now().UTC()
	claimExpired := func(owner, project string) *Command {
		e.queue(t, &Command{ProjectID: project, Argv: []string{"ok", owner}})
		got, err := e.repo.ClaimCommands(ctx, ClaimRequest{Owner: owner, Max: 1, LeaseUntil: now.Add(-time.Second), Now: now})
		if err != nil || len(got) != 1 {
			t.Fatalf("claim for %s = %v, %v", owner, got, err)
		}
		return got[0]
	}
	replayed := claimExpired("restarted", "web")
	cfg := testDispatcherConfig()
	cfg.LeaseTTL = 3 * time.Second // renewals and expiry checks every second
	e.startDispatcher(t, cfg)
	time.Sleep(1500 * time.Millisecond) // a tick or two, well within a lease
	fin := Finish{Status: CommandSucceeded, ExitCode: new(0), FinishedAt: now}
	if _, err := e.repo.FinishCommand(ctx, replayed.Lease(), fin, nil); err != nil {
		t.Fatalf("the end replayed within a lease of the dispatcher's start: %v (status %s)", err, e.repo.status(replayed.ID))
	}
	dead := claimExpired("dead", "api")
	if got := e.waitFinal(t, dead.ID); got.Status != CommandInterrupted {
		t.Errorf("a dead process's command: %s, want INTERRUPTED once storage answered a lease long", got.Status)
	}
}

// TestDispatcher_FinishedHook: the Finished hook sees each command whose end
// was stored, once, as it ended; its error leaves the command's end alone.
func TestDispatcher_FinishedHook(t *testing.T) {
	e := newCommandEnv(t)
	e.exec.program("echo", execScript{steps: []execStep{{data: "a\n"}}})
	var (
		mu   sync.Mutex
		seen []*Command
	)
	cfg := testDispatcherConfig()
	cfg.Finished = func(_ context.Context, c *Command) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, c.Clone())
		return errors.New("could not keep it")
	}
	c := mustExecute(t, e, ExecuteCommand{ProjectID: "api", Argv: []string{"echo", "t"}})
	e.startDispatcher(t, cfg)
	final := e.waitFinal(t, c.ID)
	waitFor(t, "the hook", func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) > 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].ID != c.ID || seen[0].Status != CommandSucceeded || seen[0].LastSeq != final.LastSeq {
		t.Errorf("the hook saw %+v, want %s SUCCEEDED once", seen, c.ID)
	}
	if final.Status != CommandSucceeded {
		t.Errorf("status %s after the hook failed, want SUCCEEDED", final.Status)
	}
}
