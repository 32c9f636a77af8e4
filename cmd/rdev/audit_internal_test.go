package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// gql posts a GraphQL request with token as a client with a known User-Agent
// and request ID would, and decodes data into out.
func (ts *testServer) gql(tb testing.TB, token, requestID, query string, vars map[string]any, out any) []auditGQLError {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", "audit-test/1.0")
	req.Header.Set("X-Request-ID", requestID)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var r struct {
		Data   json.RawMessage
		Errors []auditGQLError
	}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		tb.Fatal(err)
	}
	if out != nil && len(r.Data) > 0 && string(r.Data) != "null" {
		if err := json.Unmarshal(r.Data, out); err != nil {
			tb.Fatal(err)
		}
	}
	return r.Errors
}

type auditGQLError struct {
	Message    string
	Extensions struct{ Code string }
}

type auditNode struct {
	Seq                                   int
	At                                    time.Time
	Actor, ClientIP, UserAgent, RequestID string
	Action, Target, Outcome, ErrorCode    string
	Details                               []struct{ Key, Value string }
	PrevHash, KeyID, Hash                 string
}

func (n auditNode) detail(k string) string {
	for _, d := range n.Details {
		if d.Key == k {
			return d.Value
		}
	}
	return ""
}

const auditQuery = `query($f: AuditFilter, $first: Int) { auditLog(filter: $f, first: $first) { nodes {
	seq at actor clientIp userAgent requestId action target outcome errorCode details { key value } prevHash keyId hash } } }`

func (ts *testServer) auditLog(tb testing.TB, filter map[string]any, first int) []auditNode {
	tb.Helper()
	var out struct{ AuditLog struct{ Nodes []auditNode } }
	if errs := ts.gql(tb, ts.token, "audit-read", auditQuery, map[string]any{"f": filter, "first": first}, &out); len(errs) > 0 {
		tb.Fatalf("auditLog: %+v", errs)
	}
	return out.AuditLog.Nodes
}

// TestServer_EveryMutationIsAudited reads the Mutation type from the served
// schema and runs each of its fields: a mutation without a case here, or
// one that writes no entry, fails the test.
func TestServer_EveryMutationIsAudited(t *testing.T) {
	ts := startTestServer(t, nil)
	adminID, _, err := domain.ParseToken(ts.token)
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Schema struct {
			MutationType struct{ Fields []struct{ Name string } }
		} `json:"__schema"`
	}
	if errs := ts.gql(t, ts.token, "schema", `{ __schema { mutationType { fields { name } } } }`, nil, &schema); len(errs) > 0 {
		t.Fatal(errs)
	}
	var mutations []string
	for _, f := range schema.Schema.MutationType.Fields {
		mutations = append(mutations, f.Name)
	}

	// State the cases share: the key and the command they act on.
	var keyID, commandID, webhookID, deliveryID string
	type mutationCase struct {
		action string
		run    func(t *testing.T, requestID string) (target string)
	}
	cases := map[string]mutationCase{
		"createAPIKey": {domain.AuditKeyCreate, func(t *testing.T, rid string) string {
			var out struct {
				CreateAPIKey struct{ APIKey struct{ ID string } }
			}
			if errs := ts.gql(t, ts.token, rid, `mutation { createAPIKey(input: {name: "audited", scopes: [PROJECTS_READ]}) { apiKey { id } token } }`, nil, &out); len(errs) > 0 {
				t.Fatal(errs)
			}
			keyID = out.CreateAPIKey.APIKey.ID
			return keyID
		}},
		"updateAPIKey": {domain.AuditKeyUpdate, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation($id: ID!) { updateAPIKey(input: {id: $id, name: "audited, renamed"}) { apiKey { id } } }`, map[string]any{"id": keyID}, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return keyID
		}},
		"rotateAPIKey": {domain.AuditKeyRotate, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation($id: ID!) { rotateAPIKey(input: {id: $id, gracePeriodSeconds: 60}) { token } }`, map[string]any{"id": keyID}, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return keyID
		}},
		"revokeAPIKey": {domain.AuditKeyRevoke, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation($id: ID!) { revokeAPIKey(input: {id: $id}) { apiKey { id } } }`, map[string]any{"id": keyID}, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return keyID
		}},
		"executeCommand": {domain.AuditCommandExecute, func(t *testing.T, rid string) string {
			var out struct {
				ExecuteCommand struct{ Command struct{ ID string } }
			}
			if errs := ts.gql(t, ts.token, rid, `mutation { executeCommand(input: {projectId: "demo", argv: ["sleep", "3600"],
				env: [{name: "API_TOKEN", value: "s3cret-value"}, {name: "HOME", value: "/home/dev"}]}) { command { id } } }`, nil, &out); len(errs) > 0 {
				t.Fatal(errs)
			}
			commandID = out.ExecuteCommand.Command.ID
			return commandID
		}},
		// An agent run is a command: its entry is the command's. It waits
		// in the queue behind executeCommand's (one command a project),
		// so its end is not recorded between the cases.
		"runAgent": {domain.AuditCommandExecute, func(t *testing.T, rid string) string {
			var out struct {
				RunAgent struct{ AgentRun struct{ ID string } }
			}
			if errs := ts.gql(t, ts.token, rid, `mutation { runAgent(input: {projectId: "demo", prompt: "audit me", maxTurns: 2}) { agentRun { id } } }`, nil, &out); len(errs) > 0 {
				t.Fatal(errs)
			}
			return out.RunAgent.AgentRun.ID
		}},
		"cancelCommand": {domain.AuditCommandCancel, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation($id: ID!) { cancelCommand(input: {id: $id}) { command { id } } }`, map[string]any{"id": commandID}, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return commandID
		}},
		"createWebhook": {domain.AuditWebhookCreate, func(t *testing.T, rid string) string {
			var out struct {
				CreateWebhook struct {
					Webhook struct{ ID string }
					Secret  string
				}
			}
			if errs := ts.gql(t, ts.token, rid, `mutation { createWebhook(input: {url: "https://hooks.example.com/rdev", events: ["command.finished"]}) { webhook { id } secret } }`, nil, &out); len(errs) > 0 {
				t.Fatal(errs)
			}
			webhookID = out.CreateWebhook.Webhook.ID
			return webhookID
		}},
		"updateWebhook": {domain.AuditWebhookUpdate, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation($id: ID!) { updateWebhook(input: {id: $id, description: "audited"}) { webhook { id } } }`, map[string]any{"id": webhookID}, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return webhookID
		}},
		"rotateWebhookSecret": {domain.AuditWebhookRotateSecret, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation($id: ID!) { rotateWebhookSecret(input: {id: $id, gracePeriodSeconds: 60}) { secret } }`, map[string]any{"id": webhookID}, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return webhookID
		}},
		"testWebhook": {domain.AuditWebhookTest, func(t *testing.T, rid string) string {
			var out struct {
				TestWebhook struct{ Delivery struct{ ID string } }
			}
			if errs := ts.gql(t, ts.token, rid, `mutation($id: ID!) { testWebhook(input: {id: $id}) { delivery { id } } }`, map[string]any{"id": webhookID}, &out); len(errs) > 0 {
				t.Fatal(errs)
			}
			deliveryID = out.TestWebhook.Delivery.ID
			return webhookID
		}},
		"redeliverWebhookDelivery": {domain.AuditWebhookRedeliver, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation($id: ID!) { redeliverWebhookDelivery(input: {id: $id}) { delivery { id } } }`, map[string]any{"id": deliveryID}, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return deliveryID
		}},
		"deleteWebhook": {domain.AuditWebhookDelete, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation($id: ID!) { deleteWebhook(input: {id: $id}) { id } }`, map[string]any{"id": webhookID}, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return webhookID
		}},
		"setSecret": {domain.AuditSecretSet, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation { setSecret(input: {projectId: "demo", name: "AUDITED", value: "s3cret-value"}) { secret { name } } }`, nil, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return "demo"
		}},
		"setProjectNetwork": {domain.AuditProjectNetwork, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation { setProjectNetwork(input: {projectId: "demo", network: NONE}) { network } }`, nil, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return "demo"
		}},
		"deleteSecret": {domain.AuditSecretDelete, func(t *testing.T, rid string) string {
			if errs := ts.gql(t, ts.token, rid, `mutation { deleteSecret(input: {projectId: "demo", name: "AUDITED"}) { name } }`, nil, nil); len(errs) > 0 {
				t.Fatal(errs)
			}
			return "demo"
		}},
	}
	// The order the cases depend on; any other mutation fails below.
	// cancelCommand stays last: the cancelled command's own command.finish
	// entry follows it at a time of its own.
	order := []string{"createAPIKey", "updateAPIKey", "rotateAPIKey", "revokeAPIKey",
		"createWebhook", "updateWebhook", "rotateWebhookSecret", "testWebhook", "redeliverWebhookDelivery", "deleteWebhook",
		"setSecret", "deleteSecret", "setProjectNetwork", "executeCommand", "runAgent", "cancelCommand"}
	for _, m := range mutations {
		if _, ok := cases[m]; !ok {
			t.Errorf("Mutation.%s has no audit test case: add one that runs it and expects its entry", m)
		}
	}
	for _, m := range order {
		if !slices.Contains(mutations, m) {
			t.Errorf("the schema no longer has Mutation.%s", m)
		}
	}
	for _, m := range order {
		c := cases[m]
		before := ts.auditLog(t, nil, 1)
		rid := "req-" + m
		target := c.run(t, rid)
		got := ts.auditLog(t, map[string]any{"action": c.action, "target": target}, 1)
		if len(got) != 1 {
			t.Fatalf("%s: no %s entry for %s", m, c.action, target)
		}
		e := got[0]
		if len(before) == 0 || e.Seq != before[0].Seq+1 || e.PrevHash != before[0].Hash {
			t.Errorf("%s: entry %d (prev %s) does not follow entry %+v", m, e.Seq, e.PrevHash, before)
		}
		if e.Actor != adminID || e.ClientIP != "127.0.0.1" || e.UserAgent != "audit-test/1.0" || e.RequestID != rid ||
			e.Outcome != "SUCCESS" || e.ErrorCode != "" || len(e.Hash) != 64 || len(e.KeyID) != 16 || time.Since(e.At) > time.Minute {
			t.Errorf("%s: entry %+v", m, e)
		}
		if m == "setSecret" || m == "deleteSecret" {
			if e.detail("name") != "AUDITED" || e.detail("project") != "demo" {
				t.Errorf("%s: details %+v, want the project and the secret's name", m, e.Details)
			}
			for _, d := range e.Details {
				if strings.Contains(d.Key+d.Value, "s3cret-value") {
					t.Errorf("%s: detail %s=%s holds the value", m, d.Key, d.Value)
				}
			}
		}
		if m == "setProjectNetwork" && (e.detail("network") != "NONE" || e.detail("project") != "demo") {
			t.Errorf("%s: details %+v, want the project and the policy", m, e.Details)
		}
		if m == "runAgent" && (e.detail("project") != "demo" || !strings.Contains(e.detail("argv"), `"--max-turns=2","--","audit me"`)) {
			t.Errorf("runAgent: details %+v, want the project and the agent's argv", e.Details)
		}
		if m == "executeCommand" {
			if env := e.detail("env"); !strings.Contains(env, `"API_TOKEN":"[REDACTED]"`) || !strings.Contains(env, `"HOME":"[REDACTED]"`) {
				t.Errorf("executeCommand: env detail %q, want the names with every value redacted", env)
			}
		}
	}

	// Refused attempts by an authenticated caller are recorded on their own.
	var out struct{ CreateAPIKey struct{ Token string } }
	if errs := ts.gql(t, ts.token, "req-limited", `mutation { createAPIKey(input: {name: "limited", scopes: [KEYS_WRITE]}) { token } }`, nil, &out); len(errs) > 0 {
		t.Fatal(errs)
	}
	limited := out.CreateAPIKey.Token
	if errs := ts.gql(t, limited, "req-escalate", `mutation { createAPIKey(input: {name: "escalate", scopes: [ADMIN]}) { token } }`, nil, nil); len(errs) == 0 || errs[0].Extensions.Code != domain.EFORBIDDEN {
		t.Fatalf("escalation: %+v, want FORBIDDEN", errs)
	}
	if e := ts.auditLog(t, map[string]any{"action": domain.AuditKeyCreate}, 1)[0]; e.Outcome != "DENIED" || e.ErrorCode != domain.EFORBIDDEN || e.RequestID != "req-escalate" {
		t.Errorf("refused key creation recorded as %+v, want DENIED FORBIDDEN", e)
	}
	if errs := ts.gql(t, limited, "req-noscope", `mutation { cancelCommand(input: {id: "0000000000000000"}) { command { id } } }`, nil, nil); len(errs) == 0 || errs[0].Extensions.Code != domain.EFORBIDDEN {
		t.Fatalf("cancel without commands:write: %+v, want FORBIDDEN", errs)
	}
	if e := ts.auditLog(t, map[string]any{"action": domain.AuditCommandCancel}, 1)[0]; e.Outcome != "DENIED" || e.ErrorCode != domain.EFORBIDDEN || e.RequestID != "req-noscope" {
		t.Errorf("cancel refused at @hasScope recorded as %+v, want DENIED FORBIDDEN", e)
	}
	if errs := ts.gql(t, ts.token, "req-nowhere", `mutation { executeCommand(input: {projectId: "nowhere", argv: ["true"]}) { command { id } } }`, nil, nil); len(errs) == 0 {
		t.Fatal("executeCommand in an unknown project succeeded")
	}
	if e := ts.auditLog(t, map[string]any{"action": domain.AuditCommandExecute}, 1)[0]; e.Outcome != "FAILED" || e.ErrorCode != domain.ENOTFOUND || e.detail("project") != "nowhere" {
		t.Errorf("failed execute recorded as %+v, want FAILED NOT_FOUND", e)
	}

	// The cancelled command's end is recorded too.
	if !waitFor(30*time.Second, func() bool {
		return len(ts.auditLog(t, map[string]any{"action": domain.AuditCommandFinish, "target": commandID}, 1)) == 1
	}) {
		var st struct{ Command struct{ Status string } }
		_ = ts.gql(t, ts.token, "status", `query($id: ID!) { command(id: $id) { status } }`, map[string]any{"id": commandID}, &st)
		for _, e := range ts.auditLog(t, nil, 10) {
			t.Logf("audit entry: %+v", e)
		}
		t.Fatalf("no %s entry for %s (the command is %s)", domain.AuditCommandFinish, commandID, st.Command.Status)
	}
	fin := ts.auditLog(t, map[string]any{"action": domain.AuditCommandFinish, "target": commandID}, 1)[0]
	if fin.detail("status") != string(domain.CommandCancelled) || fin.detail("durationMs") == "" || fin.Actor != adminID {
		t.Errorf("finish entry %+v, want CANCELLED with a duration, by %s", fin, adminID)
	}

	// No entry holds a secret, and the chain is intact.
	all, err := ts.store.ReadAuditChain(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	dump, _ := json.Marshal(all)
	for _, secret := range []string{"s3cret-value", limited, strings.Split(limited, "_")[2], ts.token} {
		if strings.Contains(string(dump), secret) {
			t.Errorf("the audit log holds a secret %q", secret)
		}
	}
	keys, _, err := ts.cfg.audit.keyring(ts.cfg.store, false)
	if err != nil || keys == nil {
		t.Fatalf("the embedded default's audit key: %v, %v", keys, err)
	}
	// Entries may still be appended meanwhile (a command's end is audited
	// as it is stored): Verify covers at least those searched above.
	r, err := domain.AuditVerifier{Keys: keys}.Verify(t.Context(), ts.store)
	if err != nil || r.Break != nil || r.Entries < int64(len(all)) || r.Keyed != r.Entries {
		t.Errorf("Verify = %+v, %v; want at least %d intact keyed entries", r, err, len(all))
	}
}

// TestServer_AuditWriteFails moves the audit table away under a running
// server: executeCommand must fail with INTERNAL and queue nothing, and the
// server keeps serving once the table is back.
func TestServer_AuditWriteFails(t *testing.T) {
	ts := startTestServer(t, nil)
	ctx := t.Context()
	if _, err := ts.store.DB().ExecContext(ctx, "ALTER TABLE audit_log RENAME TO audit_log_away"); err != nil {
		t.Fatal(err)
	}
	const exec = `mutation { executeCommand(input: {projectId: "demo", argv: ["touch", "ran"]}) { command { id } } }`
	errs := ts.gql(t, ts.token, "req-fail", exec, nil, nil)
	if len(errs) == 0 || errs[0].Extensions.Code != domain.EINTERNAL || errs[0].Message != "internal error" {
		t.Fatalf("executeCommand without its audit entry: %+v, want INTERNAL", errs)
	}
	if cs, err := ts.store.FindCommands(ctx, domain.CommandFilter{}); err != nil || len(cs) != 0 {
		t.Fatalf("commands stored: %d, %v; want none", len(cs), err)
	}
	if _, err := ts.store.DB().ExecContext(ctx, "ALTER TABLE audit_log_away RENAME TO audit_log"); err != nil {
		t.Fatal(err)
	}
	if errs := ts.gql(t, ts.token, "req-ok", exec, nil, nil); len(errs) > 0 {
		t.Fatalf("executeCommand once the table is back: %+v", errs)
	}
	if got := ts.auditLog(t, map[string]any{"action": domain.AuditCommandExecute}, 10); len(got) != 1 || got[0].RequestID != "req-ok" {
		t.Errorf("execute entries %+v, want only the one that ran", got)
	}
}
