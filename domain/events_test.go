package domain

import (
	"context"
	"testing"
	"time"
)

// TestCommandService_Events_CatchUpAfterLag: a reader the hub dropped while
// a command finished still gets that command's final state, from storage.
func TestCommandService_Events_CatchUpAfterLag(t *testing.T) {
	e := newCommandEnv(t)
	ch := followEvents(t, e, "web")
	c := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}})

	dropEventsReader(t, e, ch, "web")

	// The command runs and ends while the reader is dropped: its events go
	// nowhere, but storage has its final state.
	succeedInStorage(t, e, c.ID)
	awaitStates(t, ch, map[string]CommandStatus{c.ID: CommandSucceeded})
}

// succeedInStorage starts and finishes command id in the repository alone,
// publishing nothing.
func succeedInStorage(t *testing.T, e *commandEnv, id string) {
	t.Helper()
	ctx, now := keyContext(t, readerKey), time.Now().UTC()
	if _, err := e.repo.ClaimCommands(ctx, ClaimRequest{Owner: "o", Max: 1, PerProject: 1, LeaseUntil: now.Add(time.Minute), Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.repo.FinishCommand(ctx, e.repo.command(id).Lease(), Finish{Status: CommandSucceeded, ExitCode: new(0), FinishedAt: now}, nil); err != nil {
		t.Fatal(err)
	}
}

// dropEventsReader floods a project's topic while nobody reads ch, its
// events, until the hub drops the reader. ch is filled first, so the
// reader's stream is stuck passing an event on when it is dropped: it
// learns of the drop, and catches up, only once ch is read again.
func dropEventsReader(t *testing.T, e *commandEnv, ch <-chan *Command, project string) {
	t.Helper()
	publish := func() {
		other := &Command{ID: NewID(time.Now()), ProjectID: project, Status: CommandRunning}
		e.hub.Publish(ProjectTopic(project), Event{Kind: EventStatus, CommandID: other.ID, Command: other})
	}
	// One at a time, so that the hub has no cause to drop the reader yet.
	for len(ch) < cap(ch) {
		n := len(ch)
		publish()
		waitFor(t, "the reader's channel to fill", func() bool { return len(ch) > n })
	}
	for range streamBuffer + 100 {
		publish()
	}
	waitFor(t, "the hub to drop the reader", func() bool { return e.hub.dropCount() > 0 })
}

// awaitStates reads ch until every command in want has reached its state
// there, failing after 10 s.
func awaitStates(t *testing.T, ch <-chan *Command, want map[string]CommandStatus) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for len(want) > 0 {
		select {
		case got, ok := <-ch:
			if !ok {
				t.Fatal("the events channel closed")
			}
			if s, ok := want[got.ID]; ok && s == got.Status {
				delete(want, got.ID)
			}
		case <-deadline:
			t.Fatalf("%d states that changed during the lag never arrived", len(want))
		}
	}
}

// TestCommandService_Events_CatchUpOlderCommand: a command queued before the
// stream began that finishes while the hub has dropped the reader still
// reaches it.
func TestCommandService_Events_CatchUpOlderCommand(t *testing.T) {
	e := newCommandEnv(t)
	c := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}})
	ch := followEvents(t, e, "web")
	dropEventsReader(t, e, ch, "web")
	succeedInStorage(t, e, c.ID)
	awaitStates(t, ch, map[string]CommandStatus{c.ID: CommandSucceeded})
}

// TestCommandService_Events_CatchUpManyCommands: more commands than a page
// holds, queued while the hub has dropped the reader, all reach it.
func TestCommandService_Events_CatchUpManyCommands(t *testing.T) {
	e := newCommandEnv(t)
	ctx := keyContext(t, readerKey)
	ch := followEvents(t, e, "web")
	dropEventsReader(t, e, ch, "web")
	want := map[string]CommandStatus{}
	for range 2*MaxPageSize + 17 {
		c := &Command{ID: NewID(time.Now()), ProjectID: "web", KeyID: "k", Type: CommandExec, Argv: []string{"ls"},
			Priority: PriorityNormal, Status: CommandQueued, CreatedAt: time.Now().UTC()}
		if err := e.repo.CreateCommand(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
		want[c.ID] = CommandQueued
	}
	awaitStates(t, ch, want)
}

// followEvents subscribes to a project's command events for the rest of the
// test.
func followEvents(t *testing.T, e *commandEnv, project string) <-chan *Command {
	t.Helper()
	ctx, cancel := context.WithCancel(keyContext(t, readerKey))
	t.Cleanup(cancel)
	ch, err := e.svc.Events(ctx, project)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the events subscription", func() bool { return e.hub.subscribers(ProjectTopic(project)) == 1 })
	return ch
}
