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
	ctx, cancel := context.WithCancel(keyContext(t, readerKey))
	defer cancel()
	ch, err := e.svc.Events(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the events subscription", func() bool { return e.hub.subscribers(ProjectTopic("web")) == 1 })
	c := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"ls"}})

	// Flood the topic while nobody reads, so the hub drops the reader.
	for range streamBuffer + 100 {
		other := &Command{ID: NewID(time.Now()), ProjectID: "web", Status: CommandRunning}
		e.hub.Publish(ProjectTopic("web"), Event{Kind: EventStatus, CommandID: other.ID, Command: other})
	}
	waitFor(t, "the hub to drop the reader", func() bool { return e.hub.dropCount() > 0 })

	// The command runs and ends while the reader is dropped: its events go
	// nowhere, but storage has its final state.
	now := time.Now().UTC()
	if _, err := e.repo.ClaimCommands(ctx, ClaimRequest{Owner: "o", Max: 1, PerProject: 1, LeaseUntil: now.Add(time.Minute), Now: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.repo.FinishCommand(ctx, c.ID, "o", Finish{Status: CommandSucceeded, ExitCode: new(0), FinishedAt: now}, nil); err != nil {
		t.Fatal(err)
	}

	deadline := time.After(10 * time.Second)
	for {
		select {
		case got, ok := <-ch:
			if !ok {
				t.Fatal("the events channel closed")
			}
			if got.ID == c.ID && got.Status == CommandSucceeded {
				return
			}
		case <-deadline:
			t.Fatal("the final state of a command that ended during the lag never arrived")
		}
	}
}
