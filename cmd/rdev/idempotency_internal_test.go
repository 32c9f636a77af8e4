package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestServer_ClientTokenReuse: through GraphQL, on the real store, a
// client token sent again with the same command returns that command, and
// with another command is CONFLICT, naming the command it was used for.
func TestServer_ClientTokenReuse(t *testing.T) {
	ts := startTestServer(t, nil)
	execute := func(in map[string]any) (id string, errs []serverError) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{
			"query":     `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
			"variables": map[string]any{"in": in},
		})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+ts.token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		var out struct {
			Data *struct {
				ExecuteCommand struct{ Command struct{ ID string } }
			}
			Errors []serverError
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
			t.Fatal(err)
		}
		if out.Data != nil {
			id = out.Data.ExecuteCommand.Command.ID
		}
		return id, out.Errors
	}
	in := map[string]any{"projectId": "demo", "argv": []string{"true"}, "env": []map[string]string{{"name": "A", "value": "1"}},
		"workdir": ".", "priority": "HIGH", "timeoutSeconds": 60, "clientToken": "build-4711"}
	first, errs := execute(in)
	if first == "" || errs != nil {
		t.Fatalf("first executeCommand: %v", errs)
	}
	if again, errs := execute(in); again != first || errs != nil {
		t.Errorf("the same request again returned %q %v, want %s", again, errs, first)
	}
	in["argv"] = []string{"false"}
	id, errs := execute(in)
	if id != "" || len(errs) != 1 || errs[0].Extensions.Code != "CONFLICT" ||
		!strings.Contains(errs[0].Message, first) || !strings.Contains(errs[0].Message, "build-4711") {
		t.Errorf("another command with the token: %q %+v, want CONFLICT naming %s", id, errs, first)
	}
}
