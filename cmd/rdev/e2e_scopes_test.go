package main_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// firstEvent opens a GraphQL subscription over SSE and returns its first
// event.
func (s *server) firstEvent(token, query string, vars map[string]any) response {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(s.t.Context(), http.MethodPost, s.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var r response
			if err := json.Unmarshal([]byte(data), &r); err != nil {
				s.t.Fatalf("event %s: %v", data, err)
			}
			return r
		}
	}
	s.t.Fatalf("the stream ended without an event (%v)", sc.Err())
	return response{}
}

// TestE2E_ProjectScopes runs the real binary with projects pay
// (team=payments) and search: a key limited to team=payments, made with
// rdev keys create --project-selector, reads pay's command output and not
// search's, and the endpoint it makes receives pay's events only.
func TestE2E_ProjectScopes(t *testing.T) {
	in := newInstance(t, webhookEnv...)
	for id, team := range map[string]string{"pay": "payments", "search": "search"} {
		dir := filepath.Join(in.workspace, id, ".rdev")
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "labels"), []byte("team="+team+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := in.serve()
	admin, _ := in.createKey("--name", "admin", "--admin")
	scoped, _ := in.createKey("--name", "payments", "--scopes", "commands:read,commands:write,webhooks:write,projects:read",
		"--project-selector", "team=payments")
	rcv := newHookReceiver(t)
	rcv.setSecret(t, createHook(t, s, scoped, rcv.URL+"/rdev"))

	execute := func(project string) string {
		r := s.query(admin, `mutation($p: ID!, $tag: String!) { executeCommand(input: {projectId: $p, argv: ["echo", "secret of", $tag]}) { command { id } } }`,
			map[string]any{"p": project, "tag": project})
		if len(r.Errors) > 0 {
			t.Fatalf("executeCommand(%s): %+v", project, r.Errors)
		}
		return r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	}
	// search's command ends before pay's starts: an endpoint is sent its
	// messages in event order, so once pay's end arrives, search's would
	// have arrived before it.
	search := execute("search")
	output := `subscription($id: ID!) { commandOutput(commandId: $id) { ... on OutputChunk { data } ... on CommandFinished { status } } }`
	if r := s.firstEvent(admin, output, map[string]any{"id": search}); len(r.Errors) > 0 {
		t.Fatalf("admin reading search's output: %+v", r.Errors)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r := s.query(admin, `query($id: ID!) { command(id: $id) { status finishedAt } }`, map[string]any{"id": search})
		if r.Data["command"].(map[string]any)["finishedAt"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("search's command did not finish")
		}
	}
	pay := execute("pay")

	if r := s.firstEvent(scoped, output, map[string]any{"id": search}); r.code() != "NOT_FOUND" {
		t.Errorf("the payments key reading search's output: %+v, want NOT_FOUND", r)
	}
	r := s.firstEvent(scoped, output, map[string]any{"id": pay})
	if len(r.Errors) > 0 || !strings.Contains(string(mustJSON(t, r.Data)), "secret of") {
		t.Errorf("the payments key reading pay's output: %+v, want its first chunk", r)
	}

	got := rcv.events(t, 20*time.Second, func(m map[string][]string) bool { return complete(m[pay]) })
	if !complete(got[pay]) {
		t.Fatalf("the payments endpoint received %v, want pay's command queued and finished", got)
	}
	if len(got[search]) > 0 {
		t.Errorf("the payments endpoint received search's messages %v", got[search])
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
