package domain

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// With a sealer, a queued command's env values are stored only sealed,
// bound to the command and the variable; the same request with its client
// token is still told apart from another; and the dispatcher opens them
// for the executor as the command starts.
func TestCommandService_SealedEnv(t *testing.T) {
	e := newCommandEnv(t)
	e.svc.SealEnvWith(xorSealer(5))
	e.exec.program("ls", execScript{})
	in := ls()
	in.ClientToken = "sealed-1"
	in.Env = []EnvVar{{Name: "TOKEN", Value: "s3cr3t-env"}, {Name: "EMPTY", Value: ""}}
	c := mustExecute(t, e, in)

	stored := e.repo.command(c.ID)
	for name, v := range stored.Env {
		if !strings.HasPrefix(v, SealedTextPrefix) || strings.Contains(v, "s3cr3t") {
			t.Errorf("stored env %s = %q, want it sealed", name, v)
		}
	}
	if again := mustExecute(t, e, in); again.ID != c.ID {
		t.Errorf("the same request again queued %s, want %s", again.ID, c.ID)
	}
	other := in
	other.Env = []EnvVar{{Name: "TOKEN", Value: "another"}, {Name: "EMPTY", Value: ""}}
	if _, err := e.svc.Execute(keyContext(t, writerKey), other); ErrorCode(err) != ECONFLICT {
		t.Errorf("the token again with another env value: %v, want ECONFLICT", err)
	}

	cfg := testDispatcherConfig()
	cfg.EnvSealer = xorSealer(5)
	e.startDispatcher(t, cfg)
	if got := e.waitFinal(t, c.ID); got.Status != CommandSucceeded {
		t.Fatalf("command %s: %s", got.Status, got.Reason)
	}
	e.exec.mu.Lock()
	reqs := slices.Clone(e.exec.reqs)
	e.exec.mu.Unlock()
	if want := map[string]string{"TOKEN": "s3cr3t-env", "EMPTY": ""}; len(reqs) != 1 || !maps.Equal(reqs[0].Env, want) {
		t.Errorf("the executor got %v, want %v", reqs, want)
	}
}

// A sealed env value that does not open (another key, or one moved to
// another command) fails its command with a reason naming the variable,
// never its value, and the command never runs.
func TestDispatcher_SealedEnvDoesNotOpen(t *testing.T) {
	e := newCommandEnv(t)
	e.svc.SealEnvWith(xorSealer(5))
	e.exec.program("ls", execScript{})
	in := ls()
	in.Env = []EnvVar{{Name: "TOKEN", Value: "s3cr3t-env"}}
	c := mustExecute(t, e, in)
	cfg := testDispatcherConfig()
	cfg.EnvSealer = xorSealer(6)
	e.startDispatcher(t, cfg)
	got := e.waitFinal(t, c.ID)
	if got.Status != CommandFailed || !strings.Contains(got.Reason, "env TOKEN of command "+c.ID+" does not open") || strings.Contains(got.Reason, "s3cr3t") {
		t.Errorf("got %s %q", got.Status, got.Reason)
	}
	e.exec.mu.Lock()
	defer e.exec.mu.Unlock()
	if len(e.exec.reqs) != 0 {
		t.Error("the command ran without its env")
	}
}
