package domain

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// ls is a valid command for project web.
func ls() ExecuteCommand {
	return ExecuteCommand{ProjectID: "web", Argv: []string{"ls", "-la"}, Priority: PriorityNormal}
}

// mustExecute queues in as the writer key.
func mustExecute(tb testing.TB, e *commandEnv, in ExecuteCommand) *Command {
	tb.Helper()
	c, err := e.svc.Execute(keyContext(tb, writerKey), in)
	if err != nil {
		tb.Fatalf("Execute(%+v): %v", in, err)
	}
	return c
}

// claimAll moves every queued command to RUNNING under owner.
func claimAll(tb testing.TB, e *commandEnv, owner string) []*Command {
	tb.Helper()
	now := time.Now().UTC()
	cs, err := e.repo.ClaimCommands(context.Background(), ClaimRequest{Owner: owner, Max: 1000, LeaseUntil: now.Add(time.Hour), Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

func TestCommandService_Execute(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		e := newCommandEnv(t)
		before := time.Now().UTC()
		c := mustExecute(t, e, ls())
		if !validID(c.ID) || c.KeyID != writerKey.ID || c.Status != CommandQueued || c.Type != CommandExec ||
			c.CreatedAt.Before(before.Truncate(time.Microsecond)) || c.CreatedAt.Location() != time.UTC ||
			c.Timeout != e.limits.DefaultTimeout || c.StartedAt != nil || c.FinishedAt != nil {
			t.Errorf("command = %+v", c)
		}
		stored := e.repo.command(c.ID)
		if stored == nil || stored.Status != CommandQueued || !slices.Equal(stored.Argv, c.Argv) || stored.KeyID != writerKey.ID {
			t.Fatalf("stored command = %+v", stored)
		}
		q := e.hub.published(QueueTopic)
		if len(q) != 1 || q[0].Kind != EventQueued || q[0].CommandID != c.ID {
			t.Errorf("queue topic events = %+v, want one EventQueued", q)
		}
		for _, topic := range []string{CommandTopic(c.ID), ProjectTopic("web")} {
			if got := e.hub.statuses(topic, c.ID); !slices.Equal(got, []CommandStatus{CommandQueued}) {
				t.Errorf("%s statuses = %v, want [QUEUED]", topic, got)
			}
		}
	})

	t.Run("OKOperator", func(t *testing.T) {
		e := newCommandEnv(t)
		c, err := e.svc.Execute(operatorContext(t), ls())
		if err != nil {
			t.Fatal(err)
		}
		if c.KeyID != "" {
			t.Errorf("operator command KeyID = %q, want empty", c.KeyID)
		}
	})

	t.Run("OKAdminScope", func(t *testing.T) {
		e := newCommandEnv(t)
		admin := &APIKey{ID: "0000adminkey0000", Scopes: Scopes{ScopeAdmin}}
		if _, err := e.svc.Execute(keyContext(t, admin), ls()); err != nil {
			t.Fatal(err)
		}
	})

	rejected := []struct {
		name string
		ctx  func(tb testing.TB) context.Context
		in   ExecuteCommand
		code string
	}{
		{"ErrUnauthenticated", func(testing.TB) context.Context { return context.Background() }, ls(), EUNAUTHENTICATED},
		{"ErrForbidden", func(tb testing.TB) context.Context { return keyContext(tb, readerKey) }, ls(), EFORBIDDEN},
		{"ErrInvalid", func(tb testing.TB) context.Context { return keyContext(tb, writerKey) }, ExecuteCommand{ProjectID: "web"}, EINVALID},
		{"ErrInvalidEnv", func(tb testing.TB) context.Context { return keyContext(tb, writerKey) },
			ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}, Env: []EnvVar{{Name: "1x"}}}, EINVALID},
		{"ErrNotFound", func(tb testing.TB) context.Context { return keyContext(tb, writerKey) },
			ExecuteCommand{ProjectID: "nope", Argv: []string{"ls"}}, ENOTFOUND},
		{"ErrConflictProjectNotRunning", func(tb testing.TB) context.Context { return keyContext(tb, writerKey) },
			ExecuteCommand{ProjectID: "asleep", Argv: []string{"ls"}}, ECONFLICT},
	}
	for _, tt := range rejected {
		t.Run(tt.name, func(t *testing.T) {
			e := newCommandEnv(t)
			c, err := e.svc.Execute(tt.ctx(t), tt.in)
			wantCode(t, err, tt.code)
			if c != nil {
				t.Errorf("command = %+v, want nil", c)
			}
			if n := e.repo.len(); n != 0 {
				t.Errorf("%d commands stored after an error", n)
			}
			if ev := e.hub.published(QueueTopic); len(ev) != 0 {
				t.Errorf("events published after an error: %+v", ev)
			}
		})
	}

	t.Run("ErrRateLimited", func(t *testing.T) {
		e := newCommandEnv(t)
		var first *Command
		for i := range e.limits.MaxQueuedPerKey {
			c := mustExecute(t, e, ls())
			if i == 0 {
				first = c
			}
		}
		_, err := e.svc.Execute(keyContext(t, writerKey), ls())
		wantCode(t, err, ERATELIMITED)
		if n := e.repo.len(); n != e.limits.MaxQueuedPerKey {
			t.Errorf("%d commands stored, want %d", n, e.limits.MaxQueuedPerKey)
		}
		// Another key has its own queue.
		if _, err := e.svc.Execute(keyContext(t, otherKey), ls()); err != nil {
			t.Errorf("other key: %v", err)
		}
		// A command that leaves the queue frees a slot.
		if _, err := e.svc.Cancel(keyContext(t, writerKey), first.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.svc.Execute(keyContext(t, writerKey), ls()); err != nil {
			t.Errorf("after a cancel: %v", err)
		}
	})

	t.Run("OKQueueLimitOff", func(t *testing.T) {
		e := newCommandEnv(t)
		e.limits.MaxQueuedPerKey = 0
		e.svc = NewCommandService(e.repo, e.projects, e.hub, nil, NewAuditService(e.repo.audit, nil), e.limits, nil)
		for range 20 {
			mustExecute(t, e, ls())
		}
	})

	t.Run("ErrInternalStore", func(t *testing.T) {
		for _, tt := range []struct {
			name string
			set  func(r *commandRepo)
		}{
			{"Count", func(r *commandRepo) { r.countErr = errors.New("db down") }},
			{"Create", func(r *commandRepo) { r.createErr = errors.New("db down") }},
			{"FindToken", func(r *commandRepo) { r.findErr = errors.New("db down") }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e := newCommandEnv(t)
				e.repo.set(tt.set)
				in := ls()
				in.ClientToken = "tok"
				_, err := e.svc.Execute(keyContext(t, writerKey), in)
				wantCode(t, err, EINTERNAL)
				if n := e.repo.len(); n != 0 {
					t.Errorf("%d commands stored", n)
				}
				if ev := e.hub.published(QueueTopic); len(ev) != 0 {
					t.Errorf("events published after an error: %+v", ev)
				}
			})
		}
	})
}

func TestCommandService_Execute_Idempotent(t *testing.T) {
	withToken := func(tok string) ExecuteCommand { in := ls(); in.ClientToken = tok; return in }

	t.Run("OKSameKeySameToken", func(t *testing.T) {
		e := newCommandEnv(t)
		in := withToken("deploy-42")
		in.Env = []EnvVar{{Name: "A", Value: "1"}}
		in.Workdir, in.TimeoutSeconds, in.Priority = "sub", new(60), PriorityHigh
		a := mustExecute(t, e, in)
		b := mustExecute(t, e, in)
		if b.ID != a.ID {
			t.Errorf("second Execute returned %s, want the first command %s", b.ID, a.ID)
		}
		if n := e.repo.len(); n != 1 {
			t.Errorf("%d commands stored, want 1", n)
		}
		if q := e.hub.published(QueueTopic); len(q) != 1 {
			t.Errorf("%d queue events, want 1: nothing new was queued", len(q))
		}
	})

	// A token names one submission: sent again with another command, it is
	// a mistake to report (as Stripe does with idempotency keys), not the
	// old command to return as if it were the new one.
	t.Run("ErrConflictOtherCommand", func(t *testing.T) {
		for _, tt := range []struct {
			name   string
			change func(*ExecuteCommand)
		}{
			{"Project", func(in *ExecuteCommand) { in.ProjectID = "api" }},
			{"Argv", func(in *ExecuteCommand) { in.Argv = []string{"rm", "-rf", "/"} }},
			{"Env", func(in *ExecuteCommand) { in.Env = []EnvVar{{Name: "A", Value: "2"}} }},
			{"Workdir", func(in *ExecuteCommand) { in.Workdir = "other" }},
			{"Type", func(in *ExecuteCommand) { in.Argv, in.Shell = nil, "ls -la" }},
			{"Priority", func(in *ExecuteCommand) { in.Priority = PriorityUrgent }},
			{"Timeout", func(in *ExecuteCommand) { in.TimeoutSeconds = new(61) }},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e := newCommandEnv(t)
				in := withToken("deploy-42")
				in.Env = []EnvVar{{Name: "A", Value: "1"}}
				in.Workdir, in.TimeoutSeconds = "sub", new(60)
				a := mustExecute(t, e, in)
				tt.change(&in)
				_, err := e.svc.Execute(keyContext(t, writerKey), in)
				wantCode(t, err, ECONFLICT)
				if msg := ErrorMessage(err); !strings.Contains(msg, a.ID) || !strings.Contains(msg, "deploy-42") {
					t.Errorf("message %q does not name the token and command %s", msg, a.ID)
				}
				if n := e.repo.len(); n != 1 {
					t.Errorf("%d commands stored, want 1", n)
				}
			})
		}
	})

	t.Run("OKAfterItRan", func(t *testing.T) {
		e := newCommandEnv(t)
		a := mustExecute(t, e, withToken("t1"))
		claimAll(t, e, "other")
		b := mustExecute(t, e, withToken("t1"))
		if b.ID != a.ID || b.Status != CommandRunning {
			t.Errorf("got %s %s, want %s RUNNING", b.ID, b.Status, a.ID)
		}
	})

	// Once a command started, storage keeps its env names only: a retry is
	// matched by them, and other names are still another command.
	t.Run("EnvAfterItStarted", func(t *testing.T) {
		e := newCommandEnv(t)
		in := withToken("t1")
		in.Env = []EnvVar{{Name: "A", Value: "1"}}
		a := mustExecute(t, e, in)
		claimAll(t, e, "other")
		if b, err := e.svc.Execute(keyContext(t, writerKey), in); err != nil || b.ID != a.ID || b.Env["A"] != "" {
			t.Errorf("retry after the start = %+v, %v; want %s with its env value cleared", b, err, a.ID)
		}
		in.Env = []EnvVar{{Name: "B", Value: "1"}}
		_, err := e.svc.Execute(keyContext(t, writerKey), in)
		wantCode(t, err, ECONFLICT)
	})

	t.Run("OKEvenWhenQueueFull", func(t *testing.T) {
		e := newCommandEnv(t)
		a := mustExecute(t, e, withToken("t1"))
		for range e.limits.MaxQueuedPerKey - 1 {
			mustExecute(t, e, ls())
		}
		b, err := e.svc.Execute(keyContext(t, writerKey), withToken("t1"))
		if err != nil || b.ID != a.ID {
			t.Errorf("retry with the same token when the queue is full: %v, %v", b, err)
		}
	})

	t.Run("OKOtherKeySameToken", func(t *testing.T) {
		e := newCommandEnv(t)
		a := mustExecute(t, e, withToken("t1"))
		b, err := e.svc.Execute(keyContext(t, otherKey), withToken("t1"))
		if err != nil {
			t.Fatal(err)
		}
		if b.ID == a.ID || b.KeyID != otherKey.ID {
			t.Errorf("other key got %s (key %s), want a new command", b.ID, b.KeyID)
		}
		if n := e.repo.len(); n != 2 {
			t.Errorf("%d commands stored, want 2", n)
		}
	})

	t.Run("OKSameKeyOtherToken", func(t *testing.T) {
		e := newCommandEnv(t)
		a := mustExecute(t, e, withToken("t1"))
		b := mustExecute(t, e, withToken("t2"))
		c := mustExecute(t, e, ls())
		d := mustExecute(t, e, ls())
		if a.ID == b.ID || c.ID == d.ID {
			t.Error("different tokens (or none) returned the same command")
		}
	})

	t.Run("OKLostRace", func(t *testing.T) {
		// A concurrent request with the same token stores its command
		// between this request's lookup and its insert.
		e := newCommandEnv(t)
		winner := &Command{ID: NewID(time.Now()), ProjectID: "web", KeyID: writerKey.ID, Type: CommandExec, Argv: []string{"ls", "-la"},
			Timeout: e.limits.DefaultTimeout, Status: CommandQueued, ClientToken: "t1", CreatedAt: time.Now().UTC()}
		e.repo.set(func(r *commandRepo) {
			r.beforeCreate = func(*Command) {
				e.repo.set(func(r *commandRepo) { r.beforeCreate = nil })
				if err := e.repo.CreateCommand(context.Background(), winner, nil); err != nil {
					t.Error(err)
				}
			}
		})
		got := mustExecute(t, e, withToken("t1"))
		if got.ID != winner.ID {
			t.Errorf("got %s, want the winner %s", got.ID, winner.ID)
		}
		if n := e.repo.len(); n != 1 {
			t.Errorf("%d commands stored, want 1", n)
		}
		if q := e.hub.published(QueueTopic); len(q) != 0 {
			t.Errorf("the loser published %d queue events", len(q))
		}
	})
}

// TestCommandService_Execute_FIFOIDs checks that commands queued one after
// the other get IDs in the same order: stores claim FIFO by ID and list
// newest first by ID.
func TestCommandService_Execute_FIFOIDs(t *testing.T) {
	e := newCommandEnv(t)
	clk := newClock()
	e.svc.now = clk.Now
	e.svc.limits.MaxQueuedPerKey = 0
	var prev string
	for i := range 50 {
		c, err := e.svc.Execute(operatorContext(t), ls())
		if err != nil {
			t.Fatal(err)
		}
		if c.ID <= prev {
			t.Fatalf("command %d has ID %s, not after the previous one's %s", i, c.ID, prev)
		}
		prev = c.ID
	}
}

func TestCommandService_Cancel(t *testing.T) {
	t.Run("OKQueued", func(t *testing.T) {
		e := newCommandEnv(t)
		c := mustExecute(t, e, ls())
		got, err := e.svc.Cancel(keyContext(t, writerKey), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != CommandCancelled || got.FinishedAt == nil || !strings.Contains(got.Reason, writerKey.ID) {
			t.Errorf("cancelled command = %+v", got)
		}
		if s := e.repo.status(c.ID); s != CommandCancelled {
			t.Errorf("stored status = %s", s)
		}
		for _, topic := range []string{CommandTopic(c.ID), ProjectTopic("web")} {
			if got := e.hub.statuses(topic, c.ID); !slices.Equal(got, []CommandStatus{CommandQueued, CommandCancelled}) {
				t.Errorf("%s statuses = %v, want [QUEUED CANCELLED]", topic, got)
			}
		}
		for _, ev := range e.hub.published(QueueTopic) {
			if ev.Kind == EventCancel {
				t.Errorf("a queued command's cancel went to the dispatchers: %+v", ev)
			}
		}
	})

	t.Run("OKOperatorReason", func(t *testing.T) {
		e := newCommandEnv(t)
		c := mustExecute(t, e, ls())
		got, err := e.svc.Cancel(operatorContext(t), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Reason != "cancelled by the operator" {
			t.Errorf("reason = %q", got.Reason)
		}
	})

	t.Run("OKRunning", func(t *testing.T) {
		e := newCommandEnv(t)
		c := mustExecute(t, e, ls())
		claimAll(t, e, "other")
		got, err := e.svc.Cancel(keyContext(t, otherKey), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != CommandRunning || !got.CancelRequested {
			t.Errorf("got %s cancelRequested=%v, want RUNNING with cancel requested", got.Status, got.CancelRequested)
		}
		var cancels []Event
		for _, ev := range e.hub.published(QueueTopic) {
			if ev.Kind == EventCancel {
				cancels = append(cancels, ev)
			}
		}
		if len(cancels) != 1 || cancels[0].CommandID != c.ID || cancels[0].Command == nil {
			t.Errorf("cancel events = %+v, want one for %s", cancels, c.ID)
		}
		if got := e.hub.statuses(CommandTopic(c.ID), c.ID); slices.Contains(got, CommandCancelled) {
			t.Errorf("CANCELLED published before the process stopped: %v", got)
		}
	})

	t.Run("ErrConflictFinished", func(t *testing.T) {
		e := newCommandEnv(t)
		c := mustExecute(t, e, ls())
		if _, err := e.svc.Cancel(keyContext(t, writerKey), c.ID); err != nil {
			t.Fatal(err)
		}
		_, err := e.svc.Cancel(keyContext(t, writerKey), c.ID)
		wantCode(t, err, ECONFLICT)

		d := mustExecute(t, e, ls())
		claimAll(t, e, "other")
		if _, err := e.repo.FinishCommand(context.Background(), e.repo.command(d.ID).Lease(), Finish{Status: CommandSucceeded, ExitCode: ptr(0)}, nil); err != nil {
			t.Fatal(err)
		}
		_, err = e.svc.Cancel(keyContext(t, writerKey), d.ID)
		wantCode(t, err, ECONFLICT)
	})

	for _, tt := range []struct {
		name string
		ctx  func(tb testing.TB) context.Context
		id   string
		code string
	}{
		{"ErrNotFound", func(tb testing.TB) context.Context { return keyContext(tb, writerKey) }, NewID(time.Now()), ENOTFOUND},
		{"ErrNotFoundMalformed", func(tb testing.TB) context.Context { return keyContext(tb, writerKey) }, "../../etc", ENOTFOUND},
		{"ErrNotFoundEmpty", func(tb testing.TB) context.Context { return keyContext(tb, writerKey) }, "", ENOTFOUND},
		{"ErrForbidden", func(tb testing.TB) context.Context { return keyContext(tb, readerKey) }, NewID(time.Now()), EFORBIDDEN},
		{"ErrUnauthenticated", func(testing.TB) context.Context { return context.Background() }, NewID(time.Now()), EUNAUTHENTICATED},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newCommandEnv(t)
			_, err := e.svc.Cancel(tt.ctx(t), tt.id)
			wantCode(t, err, tt.code)
		})
	}
}

func TestCommandService_Get(t *testing.T) {
	e := newCommandEnv(t)
	c := mustExecute(t, e, ls())
	t.Run("OK", func(t *testing.T) {
		got, err := e.svc.Get(keyContext(t, readerKey), c.ID)
		if err != nil || got.ID != c.ID {
			t.Fatalf("Get = %v, %v", got, err)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		_, err := e.svc.Get(keyContext(t, readerKey), NewID(time.Now()))
		wantCode(t, err, ENOTFOUND)
		_, err = e.svc.Get(keyContext(t, readerKey), "not an id")
		wantCode(t, err, ENOTFOUND)
	})
	t.Run("ErrForbidden", func(t *testing.T) {
		_, err := e.svc.Get(keyContext(t, otherKey), c.ID)
		wantCode(t, err, EFORBIDDEN)
	})
}

func TestCommandService_List(t *testing.T) {
	e := newCommandEnv(t)
	e.limits.MaxQueuedPerKey = 0
	e.svc = NewCommandService(e.repo, e.projects, e.hub, nil, NewAuditService(e.repo.audit, nil), e.limits, nil)
	var ids []string
	for i, p := range []string{"web", "api", "web", "db", "web"} {
		c := e.queue(t, &Command{ID: NewID(time.Now().Add(time.Duration(i) * time.Second)), ProjectID: p, Argv: []string{"ls"}})
		ids = append(ids, c.ID)
	}
	newest := slices.Clone(ids)
	slices.Reverse(newest)
	ctx := keyContext(t, readerKey)

	t.Run("OK", func(t *testing.T) {
		page, err := e.svc.List(ctx, CommandFilter{}, PageRequest{First: 2})
		if err != nil {
			t.Fatal(err)
		}
		if got := commandIDs(page.Items); !slices.Equal(got, newest[:2]) || !page.HasNextPage || page.HasPreviousPage {
			t.Errorf("page = %v next=%v prev=%v, want %v next", got, page.HasNextPage, page.HasPreviousPage, newest[:2])
		}
		page, err = e.svc.List(ctx, CommandFilter{}, PageRequest{First: 10, After: newest[1]})
		if err != nil {
			t.Fatal(err)
		}
		if got := commandIDs(page.Items); !slices.Equal(got, newest[2:]) || page.HasNextPage || !page.HasPreviousPage {
			t.Errorf("second page = %v next=%v prev=%v", got, page.HasNextPage, page.HasPreviousPage)
		}
	})
	t.Run("OKFilter", func(t *testing.T) {
		page, err := e.svc.List(ctx, CommandFilter{ProjectID: "web", Status: CommandQueued}, PageRequest{First: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got := commandIDs(page.Items); !slices.Equal(got, []string{ids[4], ids[2], ids[0]}) {
			t.Errorf("web commands = %v", got)
		}
	})
	t.Run("ErrInvalidStatus", func(t *testing.T) {
		_, err := e.svc.List(ctx, CommandFilter{Status: "DONE"}, PageRequest{First: 10})
		wantCode(t, err, EINVALID)
	})
	t.Run("ErrForbidden", func(t *testing.T) {
		_, err := e.svc.List(keyContext(t, otherKey), CommandFilter{}, PageRequest{First: 10})
		wantCode(t, err, EFORBIDDEN)
	})
	t.Run("OKForProjects", func(t *testing.T) {
		pages, err := e.svc.ListForProjects(ctx, []string{"web", "db", "empty"}, "", 2)
		if err != nil {
			t.Fatal(err)
		}
		if got := commandIDs(pages["web"].Items); !slices.Equal(got, []string{ids[4], ids[2]}) || !pages["web"].HasNextPage {
			t.Errorf("web = %v next=%v", got, pages["web"].HasNextPage)
		}
		if got := commandIDs(pages["db"].Items); !slices.Equal(got, []string{ids[3]}) || pages["db"].HasNextPage {
			t.Errorf("db = %v", got)
		}
		if p, ok := pages["empty"]; !ok || len(p.Items) != 0 {
			t.Errorf("empty = %+v, %v; want an empty page", p, ok)
		}
		_, err = e.svc.ListForProjects(ctx, []string{"web"}, "DONE", 2)
		wantCode(t, err, EINVALID)
		_, err = e.svc.ListForProjects(keyContext(t, otherKey), []string{"web"}, "", 2)
		wantCode(t, err, EFORBIDDEN)
	})
}

func commandIDs(cs []*Command) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func TestCommandService_Queue(t *testing.T) {
	e := newCommandEnv(t)
	e.queue(t, &Command{ProjectID: "web", Argv: []string{"a"}, Priority: PriorityHigh})
	claimAll(t, e, "other")
	e.queue(t, &Command{ProjectID: "web", Argv: []string{"a"}, Priority: PriorityHigh})
	e.queue(t, &Command{ProjectID: "web", Argv: []string{"a"}, Priority: PriorityLow})
	e.queue(t, &Command{ProjectID: "api", Argv: []string{"a"}, Priority: PriorityLow})
	info, err := e.svc.Queue(keyContext(t, readerKey))
	if err != nil {
		t.Fatal(err)
	}
	if info.Running != 1 || info.Queued[PriorityHigh] != 1 || info.Queued[PriorityLow] != 2 || info.Queued[PriorityUrgent] != 0 {
		t.Errorf("stats = %+v", info.QueueStats)
	}
	if info.Concurrency != e.limits.Concurrency || info.PerProject != e.limits.PerProject || info.MaxQueuedPerKey != e.limits.MaxQueuedPerKey {
		t.Errorf("limits = %+v", info)
	}
	_, err = e.svc.Queue(context.Background())
	wantCode(t, err, EUNAUTHENTICATED)
}

func TestCommandService_Relay(t *testing.T) {
	e := newCommandEnv(t)
	c := mustExecute(t, e, ls())
	sub := e.hub.Subscribe(CommandTopic(c.ID), 8)
	defer sub.Close()

	// A status event from another process names only the command.
	e.svc.Relay(t.Context(), CommandTopic(c.ID), Event{Kind: EventStatus, CommandID: c.ID})
	ev := <-sub.Events()
	if ev.Command == nil || ev.Command.ID != c.ID || ev.Command.Status != CommandQueued {
		t.Errorf("relayed status event = %+v, want the command loaded from storage", ev)
	}
	// Output events go through as they are: receivers read the chunks.
	e.svc.Relay(t.Context(), CommandTopic(c.ID), Event{Kind: EventOutput, CommandID: c.ID, UpTo: 7})
	if ev := <-sub.Events(); ev.Kind != EventOutput || ev.UpTo != 7 || len(ev.Chunks) != 0 {
		t.Errorf("relayed output event = %+v", ev)
	}
	// An event about an unknown command is dropped.
	e.svc.Relay(t.Context(), CommandTopic(c.ID), Event{Kind: EventCancel, CommandID: NewID(time.Now())})
	select {
	case ev := <-sub.Events():
		t.Errorf("relayed an event about an unknown command: %+v", ev)
	default:
	}
}

func TestCommandService_Events(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		e := newCommandEnv(t)
		ctx, cancel := context.WithCancel(keyContext(t, writerKey))
		defer cancel()
		ch, err := e.svc.Events(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the events subscription", func() bool { return e.hub.subscribers(ProjectTopic("web")) == 1 })

		c := mustExecute(t, e, ls())
		mustExecute(t, e, ExecuteCommand{ProjectID: "api", Argv: []string{"ls"}})     // another project
		e.hub.Publish(ProjectTopic("web"), Event{Kind: EventOutput, CommandID: c.ID}) // not a status
		if _, err := e.svc.Cancel(keyContext(t, writerKey), c.ID); err != nil {
			t.Fatal(err)
		}
		for _, want := range []CommandStatus{CommandQueued, CommandCancelled} {
			select {
			case got := <-ch:
				if got.ID != c.ID || got.Status != want {
					t.Fatalf("event = %s %s, want %s %s", got.ID, got.Status, c.ID, want)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no %s event", want)
			}
		}
		cancel()
		for range ch { //nolint:revive // drain until closed
		}
		waitFor(t, "the events subscription to close", func() bool { return e.hub.subscribers(ProjectTopic("web")) == 0 })
	})

	t.Run("OKAfterLag", func(t *testing.T) {
		// A reader that falls behind loses events but keeps receiving.
		e := newCommandEnv(t)
		ctx, cancel := context.WithCancel(keyContext(t, readerKey))
		defer cancel()
		ch, err := e.svc.Events(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the events subscription", func() bool { return e.hub.subscribers(ProjectTopic("web")) == 1 })
		var c *Command
		for range streamBuffer + 100 {
			c = &Command{ID: NewID(time.Now()), ProjectID: "web", Status: CommandRunning}
			e.hub.Publish(ProjectTopic("web"), Event{Kind: EventStatus, CommandID: c.ID, Command: c})
		}
		waitFor(t, "the hub to drop the reader", func() bool { return e.hub.dropCount() > 0 })
		// What the stream had passed on before the drop is read as the
		// new subscription is awaited; the hub discarded the rest.
		waitFor(t, "a new subscription", func() bool {
			for {
				select {
				case <-ch:
					continue
				default:
				}
				return e.hub.subscribers(ProjectTopic("web")) == 1
			}
		})
		done := &Command{ID: c.ID, ProjectID: "web", Status: CommandSucceeded}
		e.hub.Publish(ProjectTopic("web"), Event{Kind: EventStatus, CommandID: c.ID, Command: done})
		for got := range ch {
			if got.Status == CommandSucceeded {
				return
			}
		}
		t.Error("channel closed before the event after the lag")
	})

	for _, tt := range []struct {
		name, project string
		key           *APIKey
		code          string
	}{
		{"ErrNotFound", "nope", readerKey, ENOTFOUND},
		{"ErrNotFoundMalformed", "Not A Project", readerKey, ENOTFOUND},
		{"ErrForbidden", "web", otherKey, EFORBIDDEN},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newCommandEnv(t)
			ch, err := e.svc.Events(keyContext(t, tt.key), tt.project)
			wantCode(t, err, tt.code)
			if ch != nil {
				t.Error("channel returned with an error")
			}
		})
	}
}

// TestCommandService_Events_Order: a dispatcher may claim a command the
// moment it is stored, before Execute has published QUEUED. Subscribers
// must still never see a command go back from RUNNING to QUEUED.
func TestCommandService_Events_Order(t *testing.T) {
	e := newCommandEnv(t)
	ch := followEvents(t, e, "web")
	// A dispatcher claims the command as soon as it is stored.
	e.repo.set(func(r *commandRepo) {
		r.afterCreate = func(*Command) {
			for _, c := range claimAll(t, e, "fast-dispatcher") {
				publishStatus(context.Background(), e.hub, nil, c)
			}
		}
	})
	c := mustExecute(t, e, ls())
	// A marker after everything Execute published.
	marker := &Command{ID: NewID(time.Now()), ProjectID: "web", Status: CommandQueued}
	e.hub.Publish(ProjectTopic("web"), Event{Kind: EventStatus, CommandID: marker.ID, Command: marker})
	var got []CommandStatus
	for done := false; !done; {
		select {
		case ev := <-ch:
			if ev.ID == marker.ID {
				done = true
			} else {
				got = append(got, ev.Status)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got only %v", got)
		}
	}
	// The last word on the command must be RUNNING.
	if len(got) == 0 || got[len(got)-1] != CommandRunning {
		t.Errorf("status events for %s: %v, but it is %s", c.ID, got, e.repo.status(c.ID))
	}
}

// TestCommandService_Events_Monotonic: a subscriber sees each command's
// states only move forward (QUEUED < RUNNING < final): an event whose
// status is not later than one it already got for that command is dropped,
// whatever other commands do.
func TestCommandService_Events_Monotonic(t *testing.T) {
	e := newCommandEnv(t)
	ctx, cancel := context.WithCancel(keyContext(t, readerKey))
	defer cancel()
	ch, err := e.svc.Events(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the events subscription", func() bool { return e.hub.subscribers(ProjectTopic("web")) == 1 })
	a, b, marker := NewID(time.Now()), NewID(time.Now()), NewID(time.Now())
	names := map[string]string{a: "a", b: "b", marker: "marker"}
	for _, ev := range []struct {
		id     string
		status CommandStatus
	}{
		{a, CommandRunning},     // sent: the first word on a
		{a, CommandQueued},      // dropped: published late
		{b, CommandQueued},      // sent: another command
		{a, CommandRunning},     // dropped: a repeat
		{b, CommandRunning},     // sent
		{a, CommandSucceeded},   // sent
		{a, CommandRunning},     // dropped
		{a, CommandInterrupted}, // dropped: a already ended
		{b, CommandCancelled},   // sent
		{marker, CommandQueued}, // sent: the end of the test
	} {
		c := &Command{ID: ev.id, ProjectID: "web", Status: ev.status}
		e.hub.Publish(ProjectTopic("web"), Event{Kind: EventStatus, CommandID: c.ID, Command: c})
	}
	var got []string
	for done := false; !done; {
		select {
		case c := <-ch:
			got = append(got, names[c.ID]+" "+string(c.Status))
			done = c.ID == marker
		case <-time.After(10 * time.Second):
			t.Fatalf("got only %v", got)
		}
	}
	want := []string{"a RUNNING", "b QUEUED", "b RUNNING", "a SUCCEEDED", "b CANCELLED", "marker QUEUED"}
	if !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

// TestCommandService_Broadcast: events also go to other processes, and a
// failing broadcast fails nothing.
func TestCommandService_Broadcast(t *testing.T) {
	e := newCommandEnv(t)
	bcast := &fakeBroadcaster{err: errors.New("notify: connection refused")}
	e.svc = NewCommandService(e.repo, e.projects, e.hub, bcast, NewAuditService(e.repo.audit, nil), e.limits, nil)
	c := mustExecute(t, e, ls())
	claimAll(t, e, "other")
	if _, err := e.svc.Cancel(keyContext(t, writerKey), c.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf("%s %d", QueueTopic, EventQueued),
		fmt.Sprintf("%s %d", CommandTopic(c.ID), EventStatus),
		fmt.Sprintf("%s %d", ProjectTopic("web"), EventStatus),
		fmt.Sprintf("%s %d", QueueTopic, EventCancel),
	}
	if got := bcast.topics(); !slices.Equal(got, want) {
		t.Errorf("broadcast %v, want %v", got, want)
	}
}
