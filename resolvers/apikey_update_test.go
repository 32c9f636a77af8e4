package resolvers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/domain"
)

func TestMutation_UpdateAPIKey(t *testing.T) {
	ts := newTestServer(t)
	const update = `mutation($in: UpdateAPIKeyInput!) { updateAPIKey(input: $in) {
		apiKey { id name scopes rateLimit projects { names } } } }`
	type payload struct {
		UpdateAPIKey *struct {
			APIKey struct {
				ID, Name  string
				Scopes    []string
				RateLimit *int
				Projects  struct{ Names []string }
			}
		}
	}
	decode := func(t *testing.T, r gqlResponse) payload {
		t.Helper()
		var p payload
		if err := json.Unmarshal(r.Data, &p); err != nil {
			t.Fatalf("%v: %s", err, r.Data)
		}
		return p
	}

	t.Run("OKRenameKeepsTheRest", func(t *testing.T) {
		token := ts.createKey(t, "before", domain.ScopeProjectsRead, domain.ScopeKeysRead)
		id, _, _ := domain.ParseToken(token)
		r := ts.query(t, ts.admin, update, map[string]any{"in": map[string]any{"id": id, "name": "after"}})
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		k := decode(t, r).UpdateAPIKey.APIKey
		if k.ID != id || k.Name != "after" || strings.Join(k.Scopes, ",") != "KEYS_READ,PROJECTS_READ" {
			t.Errorf("updated key %+v; want the new name and both scopes kept", k)
		}
	})

	t.Run("OKNarrowed", func(t *testing.T) {
		token := ts.createKey(t, "narrowed", domain.ScopeProjectsRead, domain.ScopeKeysRead)
		id, _, _ := domain.ParseToken(token)
		r := ts.query(t, ts.admin, update, map[string]any{"in": map[string]any{
			"id": id, "scopes": []string{"PROJECTS_READ"}, "rateLimit": 3, "projects": []string{"api"},
		}})
		if len(r.Errors) > 0 {
			t.Fatal(r.Errors)
		}
		k := decode(t, r).UpdateAPIKey.APIKey
		if strings.Join(k.Scopes, ",") != "PROJECTS_READ" || k.RateLimit == nil || *k.RateLimit != 3 || strings.Join(k.Projects.Names, ",") != "api" {
			t.Errorf("updated key %+v", k)
		}
		// The next request of the key is judged by what it is now.
		if r := ts.query(t, token, `{ apiKeys(first: 1) { nodes { id } } }`, nil); r.code() != domain.EFORBIDDEN {
			t.Errorf("keys:read after it was taken away: %q %v", r.code(), r.Errors)
		}
	})

	t.Run("ErrForbiddenWidening", func(t *testing.T) {
		token := ts.createKey(t, "narrow", domain.ScopeProjectsRead)
		id, _, _ := domain.ParseToken(token)
		r := ts.query(t, ts.admin, update, map[string]any{"in": map[string]any{"id": id, "scopes": []string{"PROJECTS_READ", "COMMANDS_WRITE"}}})
		if r.code() != domain.EFORBIDDEN || !strings.Contains(r.Errors[0].Message, "make a new key to widen it") {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
		if p := decode(t, r); p.UpdateAPIKey != nil {
			t.Errorf("updateAPIKey = %+v with an error, want null", p.UpdateAPIKey)
		}
		audited := ts.query(t, ts.admin, `query($id: ID!) { auditLog(first: 1, filter: {target: $id, action: "key.update"}) {
			nodes { action target outcome errorCode } } }`, map[string]any{"id": id})
		if len(audited.Errors) > 0 || !strings.Contains(string(audited.Data), `"action":"key.update","target":"`+id+`","outcome":"DENIED","errorCode":"FORBIDDEN"`) {
			t.Errorf("last audit entry: %v %s", audited.Errors, audited.Data)
		}
	})

	t.Run("ErrForbiddenWithoutKeysWrite", func(t *testing.T) {
		token := ts.createKey(t, "reader", domain.ScopeKeysRead)
		id, _, _ := domain.ParseToken(token)
		r := ts.query(t, token, update, map[string]any{"in": map[string]any{"id": id, "name": "mine"}})
		if r.code() != domain.EFORBIDDEN || !strings.Contains(r.Errors[0].Message, "keys:write") {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
	})

	t.Run("ErrInvalidNothingToChange", func(t *testing.T) {
		token := ts.createKey(t, "same", domain.ScopeProjectsRead)
		id, _, _ := domain.ParseToken(token)
		r := ts.query(t, ts.admin, update, map[string]any{"in": map[string]any{"id": id}})
		if r.code() != domain.EINVALID {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		r := ts.query(t, ts.admin, update, map[string]any{"in": map[string]any{"id": "nope", "name": "x"}})
		if r.code() != domain.ENOTFOUND {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
	})
}
