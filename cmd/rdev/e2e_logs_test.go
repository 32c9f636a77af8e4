package main_test

import (
	"strings"
	"testing"
	"time"
)

// TestE2E_NoSecretsInLogs does what leaks secrets into logs elsewhere —
// creates, rotates and uses keys, fails authentication with a real key's ID,
// runs a command with a secret in its environment — at debug level, and
// checks that no token, secret or environment value appears in anything the
// server or the CLI printed.
func TestE2E_NoSecretsInLogs(t *testing.T) {
	in := newInstance(t, "LOG_LEVEL=debug")
	admin, adminID := in.createKey("--name", "admin", "--admin")
	s := in.serve()

	r := s.query(admin, `mutation { createAPIKey(input: {name: "ci", scopes: [COMMANDS_READ, COMMANDS_WRITE, PROJECTS_READ]}) { token apiKey { id } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("createAPIKey: %+v", r.Errors)
	}
	ci := r.Data["createAPIKey"].(map[string]any)
	ciToken := ci["token"].(string)
	ciID := ci["apiKey"].(map[string]any)["id"].(string)
	r = s.query(admin, `mutation($id: ID!) { rotateAPIKey(input: {id: $id, gracePeriodSeconds: 60}) { token } }`, map[string]any{"id": ciID})
	if len(r.Errors) > 0 {
		t.Fatalf("rotateAPIKey: %+v", r.Errors)
	}
	rotated := r.Data["rotateAPIKey"].(map[string]any)["token"].(string)

	// A wrong secret for a real key, and a malformed token.
	forged := "rdev_" + adminID + "_" + strings.Repeat("A", 26) + "xxxxxx"
	if r := s.query(forged, `{ viewer { id } }`, nil); len(r.Errors) == 0 {
		t.Fatal("a forged token was accepted")
	}
	const envSecret = "hunter2-correct-horse-battery"
	r = s.query(rotated, `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
		map[string]any{"in": map[string]any{"projectId": "demo", "argv": []string{"true"},
			"env": []map[string]any{{"name": "API_TOKEN", "value": envSecret}}}})
	if len(r.Errors) > 0 {
		t.Fatalf("executeCommand: %+v", r.Errors)
	}
	id := r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := s.query(admin, `query($id: ID!) { command(id: $id) { status } }`, map[string]any{"id": id})
		if st := r.Data["command"].(map[string]any)["status"]; st == "SUCCEEDED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command never finished")
		}
	}
	_, cliErr, _ := in.cli("keys", "list")
	s.stop()

	logs := s.output() + cliErr
	if !strings.Contains(logs, `"level":"DEBUG"`) && !strings.Contains(logs, "level=DEBUG") {
		t.Fatalf("the server logged nothing at debug level; the test would prove nothing:\n%.2000s", logs)
	}
	for what, secret := range map[string]string{
		"the admin token": admin, "the created token": ciToken, "the rotated token": rotated,
		"the forged token": forged, "an environment value": envSecret,
		"the admin secret": secretOf(admin), "the created secret": secretOf(ciToken), "the rotated secret": secretOf(rotated),
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("%s appears in the logs", what)
		}
	}
}

// secretOf is the secret part of a token rdev_<id>_<secret>.
func secretOf(token string) string {
	return token[strings.LastIndex(token, "_")+1:]
}
