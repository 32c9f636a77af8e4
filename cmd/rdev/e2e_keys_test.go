package main_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const (
	createKeyMutation = `mutation($in: CreateAPIKeyInput!) { createAPIKey(input: $in) { token apiKey { id allowedCIDRs expiresAt rateLimit createdById } } }`
	rotateKeyMutation = `mutation($id: ID!) { rotateAPIKey(input: {id: $id, gracePeriodSeconds: 2592000}) { token } }`
	revokeKeyMutation = `mutation($id: ID!) { revokeAPIKey(input: {id: $id}) { apiKey { id status } revokedDescendants { id status createdById } } }`
)

// mustCreateKey creates a key through the API as the key token and returns
// its token and ID.
func (s *server) mustCreateKey(token string, in map[string]any) (string, string) {
	s.t.Helper()
	r := s.query(token, createKeyMutation, map[string]any{"in": in})
	if len(r.Errors) > 0 {
		s.t.Fatalf("createAPIKey(%v): %+v", in, r.Errors)
	}
	p := r.Data["createAPIKey"].(map[string]any)
	return p["token"].(string), p["apiKey"].(map[string]any)["id"].(string)
}

// wantRefused fails unless r failed with code and a message containing msg.
func wantRefused(t *testing.T, what string, r response, code, msg string) {
	t.Helper()
	if r.code() != code || !strings.Contains(r.Errors[0].Message, msg) {
		t.Errorf("%s: %+v, want %s naming %q", what, r.Errors, code, msg)
	}
}

// TestE2E_KeyTree reproduces rdev issue 14 through the real binary: a key
// bound to 127.0.0.1/32 minted a child with no CIDRs, no expiry and
// rateLimit 100000, which kept working after its parent was revoked; and a
// key with keys:write + X could rotate an admin-made key whose scopes are
// within X. Now the child is bounded by its parent, dies with it, and only
// a key's own line (or an admin) may rotate or revoke it; `rdev keys
// revoke` cascades too.
func TestE2E_KeyTree(t *testing.T) {
	in := newInstance(t, "RATE_LIMIT_RPS=1000")
	adminToken, adminID := in.createKey("--name", "admin", "--admin")
	parentToken, parentID := in.createKey("--name", "parent", "--scopes", "keys:write,keys:read,projects:read", "--allowed-cidrs", "127.0.0.1/32")
	s := in.serve()

	// The child of the issue, and its near misses, are refused.
	unbounded := map[string]any{"name": "child", "scopes": []string{"PROJECTS_READ"}, "rateLimit": 100000}
	wantRefused(t, "an unbounded child", s.query(parentToken, createKeyMutation, map[string]any{"in": unbounded}), "FORBIDDEN", "allowedCIDRs")
	unbounded["allowedCIDRs"] = []string{"127.0.0.1/32"}
	wantRefused(t, "a child above the server's 1000 rps", s.query(parentToken, createKeyMutation, map[string]any{"in": unbounded}), "FORBIDDEN", "rateLimit")
	unbounded["allowedCIDRs"], unbounded["rateLimit"] = []string{"0.0.0.0/0"}, 10
	wantRefused(t, "a child usable from anywhere", s.query(parentToken, createKeyMutation, map[string]any{"in": unbounded}), "FORBIDDEN", "allowedCIDRs")

	// A bounded child and grandchild are made, and work.
	childToken, childID := s.mustCreateKey(parentToken, map[string]any{
		"name": "child", "scopes": []string{"KEYS_WRITE", "PROJECTS_READ"}, "allowedCIDRs": []string{"127.0.0.1/32"},
	})
	grandToken, grandID := s.mustCreateKey(childToken, map[string]any{
		"name": "grandchild", "scopes": []string{"PROJECTS_READ"}, "allowedCIDRs": []string{"127.0.0.1"},
	})
	for _, token := range []string{childToken, grandToken} {
		if r := s.query(token, `{ viewer { id } }`, nil); len(r.Errors) > 0 {
			t.Fatalf("viewer: %+v", r.Errors)
		}
	}

	// A keys:write + PROJECTS_READ key cannot take over an admin-made key
	// with PROJECTS_READ.
	ciBotToken, ciBotID := s.mustCreateKey(adminToken, map[string]any{"name": "ci-bot", "scopes": []string{"PROJECTS_READ"}})
	rogueToken, _ := s.mustCreateKey(adminToken, map[string]any{"name": "rogue", "scopes": []string{"KEYS_WRITE", "PROJECTS_READ"}})
	vars := map[string]any{"id": ciBotID}
	wantRefused(t, "rotating ci-bot", s.query(rogueToken, rotateKeyMutation, vars), "FORBIDDEN", "was not created by this key")
	wantRefused(t, "revoking ci-bot", s.query(rogueToken, revokeKeyMutation, vars), "FORBIDDEN", "was not created by this key")
	if r := s.query(ciBotToken, `{ viewer { status } }`, nil); len(r.Errors) > 0 {
		t.Errorf("ci-bot after the refused takeover: %+v", r.Errors)
	}

	// Revoking the parent revokes its line.
	r := s.query(adminToken, revokeKeyMutation, map[string]any{"id": parentID})
	if len(r.Errors) > 0 {
		t.Fatalf("revokeAPIKey(parent): %+v", r.Errors)
	}
	p := r.Data["revokeAPIKey"].(map[string]any)
	var got []string
	for _, d := range p["revokedDescendants"].([]any) {
		d := d.(map[string]any)
		got = append(got, d["id"].(string)+" "+d["status"].(string)+" by "+d["createdById"].(string))
	}
	if want := []string{childID + " REVOKED by " + parentID, grandID + " REVOKED by " + childID}; !slices.Equal(got, want) {
		t.Errorf("revokedDescendants = %v, want %v", got, want)
	}
	for name, token := range map[string]string{"parent": parentToken, "child": childToken, "grandchild": grandToken} {
		if r := s.query(token, `{ viewer { id } }`, nil); r.code() != "UNAUTHENTICATED" {
			t.Errorf("%s after the parent's revocation: %+v, want UNAUTHENTICATED", name, r.Errors)
		}
	}
	r = s.query(adminToken, `query($id: ID!) { apiKey(id: $id) { status revokedAt } }`, map[string]any{"id": childID})
	if k, _ := r.Data["apiKey"].(map[string]any); k == nil || k["status"] != "REVOKED" || k["revokedAt"] == nil {
		t.Errorf("apiKey(child) = %+v, want REVOKED", r)
	}
	r = s.query(adminToken, `{ auditLog(filter: {action: "key.revoke"}, first: 10) { nodes { actor target outcome details { key value } } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("auditLog: %+v", r.Errors)
	}
	var entries []string
	for _, n := range r.Data["auditLog"].(map[string]any)["nodes"].([]any) {
		n := n.(map[string]any)
		if n["outcome"] != "SUCCESS" {
			continue
		}
		var details []string
		for _, d := range n["details"].([]any) {
			d := d.(map[string]any)
			details = append(details, d["key"].(string)+"="+d["value"].(string))
		}
		entries = append(entries, n["actor"].(string)+" "+n["target"].(string)+" "+strings.Join(details, ","))
	}
	slices.Reverse(entries)
	if want := []string{
		adminID + " " + parentID + " revokedDescendants=2",
		adminID + " " + childID + " cascadeFrom=" + parentID + ",createdBy=" + parentID,
		adminID + " " + grandID + " cascadeFrom=" + parentID + ",createdBy=" + childID,
	}; !slices.Equal(entries, want) {
		t.Errorf("successful key.revoke entries:\n%s\nwant:\n%s", strings.Join(entries, "\n"), strings.Join(want, "\n"))
	}
	s.stop()

	// The operator's CLI cascades the same way: the admin key takes ci-bot
	// and rogue with it.
	out, errs, code := in.cli("keys", "revoke", "--json", adminID)
	if code != 0 {
		t.Fatalf("keys revoke: exit %d: %s", code, errs)
	}
	var revoked struct{ RevokedDescendants []string }
	if err := json.Unmarshal([]byte(out), &revoked); err != nil || len(revoked.RevokedDescendants) != 2 || revoked.RevokedDescendants[0] != ciBotID {
		t.Errorf("keys revoke --json = %s (%v), want ci-bot and rogue revoked with the admin key", out, err)
	}
	out, _, _ = in.cli("keys", "list")
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, ciBotID) && !strings.Contains(line, "REVOKED") {
			t.Errorf("keys list after revoking the admin key: %q, want ci-bot REVOKED", line)
		}
	}
}
