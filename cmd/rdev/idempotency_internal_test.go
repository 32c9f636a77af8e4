package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/client"
)

// TestServer_ClientTokenReuse: through GraphQL, on the real store, a
// client token sent again with the same command returns that command, and
// with another command is CONFLICT, naming the command it was used for.
func TestServer_ClientTokenReuse(t *testing.T) {
	ts := startTestServer(t, nil)
	cl, err := client.New(ts.url, ts.token, nil)
	if err != nil {
		t.Fatal(err)
	}
	in := client.ExecuteInput{ProjectID: "demo", Argv: []string{"true"}, Env: []client.EnvVar{{Name: "A", Value: "1"}},
		Workdir: ".", Priority: client.PriorityHigh, Timeout: time.Minute, ClientToken: "build-4711"}
	first, err := cl.Execute(t.Context(), in)
	if err != nil {
		t.Fatalf("first executeCommand: %v", err)
	}
	if again, err := cl.Execute(t.Context(), in); err != nil || again.ID != first.ID {
		t.Errorf("the same request again returned %+v %v, want %s", again, err, first.ID)
	}
	in.Argv = []string{"false"}
	cmd, err := cl.Execute(t.Context(), in)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != "CONFLICT" || !strings.Contains(ce.Message, first.ID) || !strings.Contains(ce.Message, "build-4711") {
		t.Errorf("another command with the token: %+v %v, want CONFLICT naming %s", cmd, err, first.ID)
	}
}
