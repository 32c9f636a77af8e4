package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph"
	"github.com/rdev-hq/rdev/resolvers"
)

// The project-scope matrix: every root field of the schema, and every
// nested field that leads to a project's data, is run on the real server
// (resolvers, domain services, SQLite, local projects) by keys of each
// project scope — every project, by name, by label selector — against a
// project in scope ("pay", labelled team=payments) and one out of it
// ("search", team=search), and by keys lacking the field's scope. A root
// or nested field without an entry fails the test, so a new one has to
// decide what it does out of scope.

// scopeMatrix holds the server and its fixtures.
type scopeMatrix struct {
	ts *testServer
	// cmdPay and cmdSearch are finished commands in pay and search;
	// runPay and runSearch finished agent runs.
	cmdPay, cmdSearch string
	runPay, runSearch string
	// hookAdmin is an endpoint made by an unrestricted key, and
	// deliveryAdmin one of its deliveries.
	hookAdmin, deliveryAdmin string
	// adminKeyID is the unrestricted admin key's ID.
	adminKeyID string
}

// matrixKey is a key of one project scope.
type matrixKey struct {
	scope      string // "every", "name", "selector"
	restricted bool
	id, token  string
	// hook is an endpoint the key made, and delivery one of its deliveries.
	hook, delivery string
}

// gqlResult is one response, decoded.
type gqlResult struct {
	Data   map[string]any
	Errors []auditGQLError
}

func (r gqlResult) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	return r.Errors[0].Extensions.Code
}

func (m *scopeMatrix) do(tb testing.TB, token, query string, vars map[string]any) gqlResult {
	tb.Helper()
	var data map[string]any
	errs := m.ts.gql(tb, token, "matrix", query, vars, &data)
	return gqlResult{Data: data, Errors: errs}
}

// subscribe opens query over SSE and returns the first event's result.
func (m *scopeMatrix) subscribe(tb testing.TB, token, query string, vars map[string]any, started func()) gqlResult {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, m.ts.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		var r gqlResult
		_ = json.NewDecoder(res.Body).Decode(&r)
		return r
	}
	if started != nil {
		started()
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var r gqlResult
			if err := json.Unmarshal([]byte(data), &r); err != nil {
				tb.Fatalf("event %s: %v", data, err)
			}
			return r
		}
	}
	tb.Fatalf("the stream ended without an event (%v)", sc.Err())
	return gqlResult{}
}

// path walks a decoded response.
func path(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// ids returns the ids of a connection's nodes.
func ids(conn any) []string {
	var out []string
	nodes, _ := path(conn, "nodes").([]any)
	for _, n := range nodes {
		out = append(out, path(n, "id").(string))
	}
	return out
}

// rootCase is what one root field does in and out of scope.
type rootCase struct {
	// probe is a request that reaches the in-scope target, for the check
	// that a key without the field's scope is FORBIDDEN.
	probe func(m *scopeMatrix, k matrixKey) (string, map[string]any)
	// check runs the field as k and asserts: the in-scope target works;
	// the out-of-scope one is refused or filtered when k is restricted,
	// and works when it is not.
	check func(t *testing.T, m *scopeMatrix, k matrixKey)
}

// wantCode asserts r's error code.
func wantCode(t *testing.T, what string, r gqlResult, code string) {
	t.Helper()
	if got := r.code(); got != code {
		t.Errorf("%s: code %q (%+v), want %q", what, got, r.Errors, code)
	}
}

// outCode is what the out-of-scope target gives k: NOT_FOUND when k is
// restricted, ifOpen otherwise.
func outCode(k matrixKey, ifOpen string) string {
	if k.restricted {
		return domain.ENOTFOUND
	}
	return ifOpen
}

// wantListed asserts that in is among got, and out is iff k is unrestricted.
func wantListed(t *testing.T, what string, k matrixKey, got []string, in, out string) {
	t.Helper()
	if !slices.Contains(got, in) {
		t.Errorf("%s: %q missing from %q", what, in, got)
	}
	if slices.Contains(got, out) == k.restricted {
		t.Errorf("%s: %q listed = %v for a key restricted = %v (%q)", what, out, !k.restricted, k.restricted, got)
	}
}

func query(q string, vars map[string]any) func(*scopeMatrix, matrixKey) (string, map[string]any) {
	return func(*scopeMatrix, matrixKey) (string, map[string]any) { return q, vars }
}

func rootCases() map[string]rootCase {
	const (
		commandQ      = `query($id: ID!) { command(id: $id) { id project { id } } }`
		projectQ      = `query($id: ID!) { project(id: $id) { id commands(first: 100) { nodes { id } } } }`
		webhookQ      = `query($id: ID!) { webhook(id: $id) { id deliveries(first: 5) { nodes { id } } } }`
		cancelM       = `mutation($id: ID!) { cancelCommand(input: {id: $id}) { command { id } } }`
		executeM      = `mutation($p: ID!) { executeCommand(input: {projectId: $p, argv: ["true"]}) { command { id } } }`
		updateM       = `mutation($id: ID!) { updateWebhook(input: {id: $id, description: "changed"}) { webhook { id } } }`
		rotateHM      = `mutation($id: ID!) { rotateWebhookSecret(input: {id: $id}) { webhook { id } } }`
		testHM        = `mutation($id: ID!) { testWebhook(input: {id: $id}) { delivery { id } } }`
		redeliverM    = `mutation($id: ID!) { redeliverWebhookDelivery(input: {id: $id}) { delivery { id } } }`
		deleteM       = `mutation($id: ID!) { deleteWebhook(input: {id: $id}) { id } }`
		setSecretM    = `mutation($p: ID!, $n: String!) { setSecret(input: {projectId: $p, name: $n, value: "v"}) { secret { name } } }`
		deleteSecretM = `mutation($p: ID!, $n: String!) { deleteSecret(input: {projectId: $p, name: $n}) { name } }`
		setNetworkM   = `mutation($p: ID!) { setProjectNetwork(input: {projectId: $p, network: null}) { network } }`
		outputS       = `subscription($id: ID!) { commandOutput(commandId: $id) {
			... on OutputChunk { seq } ... on CommandFinished { command { id project { id } } } } }`
		eventsS   = `subscription($p: ID!) { commandEvents(projectId: $p) { id projectId } }`
		agentRunQ = `query($id: ID!) { agentRun(id: $id) { id project { id } command { id } } }`
		runAgentM = `mutation($p: ID!) { runAgent(input: {projectId: $p, prompt: "hi"}) { agentRun { id } } }`
		agentS    = `subscription($id: ID!) { agentEvents(runId: $id) { ... on AgentRaw { seq } ... on AgentRunEnded { seq } } }`
		statusS   = `subscription($p: ID) { projectStatus(projectId: $p) { id status } }`
	)
	byID := func(q string, in func(*scopeMatrix, matrixKey) string) func(*scopeMatrix, matrixKey) (string, map[string]any) {
		return func(m *scopeMatrix, k matrixKey) (string, map[string]any) { return q, map[string]any{"id": in(m, k)} }
	}
	cmdPay := func(m *scopeMatrix, _ matrixKey) string { return m.cmdPay }
	runPay := func(m *scopeMatrix, _ matrixKey) string { return m.runPay }
	ownHook := func(_ *scopeMatrix, k matrixKey) string { return k.hook }
	return map[string]rootCase{
		"Query.viewer": {probe: query(`{ viewer { id } }`, nil), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, `{ viewer { id projects { names selectors unrestricted } } }`, nil)
			wantCode(t, "viewer", r, "")
			if got := path(r.Data, "viewer", "projects", "unrestricted"); got != !k.restricted {
				t.Errorf("viewer.projects.unrestricted = %v for a key restricted = %v", got, k.restricted)
			}
		}},
		"Query.health": {probe: query(`{ health { ready } }`, nil), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			wantCode(t, "health (no project's data)", m.do(t, k.token, `{ health { ready } }`, nil), "")
		}},
		"Query.projects": {probe: query(`{ projects { nodes { id } } }`, nil), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, `{ projects(first: 100) { nodes { id } } }`, nil)
			wantCode(t, "projects", r, "")
			wantListed(t, "projects", k, ids(path(r.Data, "projects")), "pay", "search")
			r = m.do(t, k.token, `{ projects(first: 100, filter: {labels: [{key: "team", value: "search"}]}) { nodes { id } } }`, nil)
			if got := ids(path(r.Data, "projects")); slices.Contains(got, "search") == k.restricted {
				t.Errorf("projects filtered by search's label = %q for a key restricted = %v", got, k.restricted)
			}
		}},
		"Query.project": {probe: byID(projectQ, func(*scopeMatrix, matrixKey) string { return "pay" }), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			wantCode(t, "project(pay)", m.do(t, k.token, projectQ, map[string]any{"id": "pay"}), "")
			wantCode(t, "project(search)", m.do(t, k.token, projectQ, map[string]any{"id": "search"}), outCode(k, ""))
		}},
		"Query.apiKeys": {probe: query(`{ apiKeys { nodes { id } } }`, nil), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, `{ apiKeys(first: 100) { nodes { id } } }`, nil)
			wantCode(t, "apiKeys", r, "")
			wantListed(t, "apiKeys", k, ids(path(r.Data, "apiKeys")), k.id, m.adminKeyID)
		}},
		"Query.apiKey": {probe: byID(`query($id: ID!) { apiKey(id: $id) { id } }`, func(_ *scopeMatrix, k matrixKey) string { return k.id }), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			q := `query($id: ID!) { apiKey(id: $id) { id } }`
			wantCode(t, "apiKey(own)", m.do(t, k.token, q, map[string]any{"id": k.id}), "")
			wantCode(t, "apiKey(unrestricted key)", m.do(t, k.token, q, map[string]any{"id": m.adminKeyID}), outCode(k, ""))
		}},
		"Query.command": {probe: byID(commandQ, cmdPay), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, commandQ, map[string]any{"id": m.cmdPay})
			wantCode(t, "command(pay's)", r, "")
			if path(r.Data, "command", "project", "id") != "pay" {
				t.Errorf("command(pay's).project = %v, want pay", path(r.Data, "command", "project"))
			}
			wantCode(t, "command(search's)", m.do(t, k.token, commandQ, map[string]any{"id": m.cmdSearch}), outCode(k, ""))
		}},
		"Query.agentRun": {probe: byID(agentRunQ, runPay), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, agentRunQ, map[string]any{"id": m.runPay})
			wantCode(t, "agentRun(pay's)", r, "")
			if path(r.Data, "agentRun", "project", "id") != "pay" {
				t.Errorf("agentRun(pay's).project = %v, want pay", path(r.Data, "agentRun", "project"))
			}
			wantCode(t, "agentRun(search's)", m.do(t, k.token, agentRunQ, map[string]any{"id": m.runSearch}), outCode(k, ""))
		}},
		"Query.agentSessions": {probe: query(`{ agentSessions(projectId: "pay") { id } }`, nil), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			q := `query($p: ID!) { agentSessions(projectId: $p) { id project { id } } }`
			wantCode(t, "agentSessions(pay)", m.do(t, k.token, q, map[string]any{"p": "pay"}), "")
			wantCode(t, "agentSessions(search)", m.do(t, k.token, q, map[string]any{"p": "search"}), outCode(k, ""))
		}},
		"Query.commands": {probe: query(`{ commands { nodes { id } } }`, nil), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			q := `query($p: ID) { commands(projectId: $p, first: 100) { nodes { id } } }`
			r := m.do(t, k.token, q, nil)
			wantCode(t, "commands", r, "")
			wantListed(t, "commands", k, ids(path(r.Data, "commands")), m.cmdPay, m.cmdSearch)
			r = m.do(t, k.token, q, map[string]any{"p": "search"})
			if got := ids(path(r.Data, "commands")); slices.Contains(got, m.cmdSearch) == k.restricted {
				t.Errorf("commands(projectId: search) = %q for a key restricted = %v", got, k.restricted)
			}
		}},
		"Query.queue": {probe: query(`{ queue { queuedTotal } }`, nil), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			wantCode(t, "queue (shared figures, no project named)", m.do(t, k.token, `{ queue { queuedTotal running } }`, nil), "")
		}},
		"Query.auditLog": {probe: query(`{ auditLog { nodes { seq } } }`, nil), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			q := `query($t: ID) { auditLog(first: 100, filter: {target: $t}) { nodes { action target } } }`
			count := func(target string) int {
				r := m.do(t, k.token, q, map[string]any{"t": target})
				wantCode(t, "auditLog", r, "")
				nodes, _ := path(r.Data, "auditLog", "nodes").([]any)
				return len(nodes)
			}
			if n := count(m.cmdPay); n < 2 {
				t.Errorf("auditLog of pay's command: %d entries, want its execute and finish", n)
			}
			if n := count(m.cmdSearch); (n == 0) != k.restricted {
				t.Errorf("auditLog of search's command: %d entries for a key restricted = %v", n, k.restricted)
			}
		}},
		"Query.webhooks": {probe: query(`{ webhooks { nodes { id } } }`, nil), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, `{ webhooks(first: 100) { nodes { id } } }`, nil)
			wantCode(t, "webhooks", r, "")
			wantListed(t, "webhooks", k, ids(path(r.Data, "webhooks")), k.hook, m.hookAdmin)
		}},
		"Query.webhook": {probe: byID(webhookQ, ownHook), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			wantCode(t, "webhook(own)", m.do(t, k.token, webhookQ, map[string]any{"id": k.hook}), "")
			wantCode(t, "webhook(unrestricted one)", m.do(t, k.token, webhookQ, map[string]any{"id": m.hookAdmin}), outCode(k, ""))
		}},
		"Mutation.createAPIKey": {probe: query(`mutation { createAPIKey(input: {name: "p", scopes: [COMMANDS_READ], projects: ["pay"]}) { apiKey { id } } }`, nil),
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				q := `mutation($p: [ID!], $s: [String!]) { createAPIKey(input: {name: "child", scopes: [COMMANDS_READ], projects: $p, projectSelectors: $s}) { apiKey { id } } }`
				in := map[string]any{"p": []string{"pay"}}
				if k.scope == "selector" {
					in = map[string]any{"s": []string{"team=payments,tier=web"}}
				}
				wantCode(t, "createAPIKey(within)", m.do(t, k.token, q, in), "")
				wide := domain.EFORBIDDEN
				if !k.restricted {
					wide = ""
				}
				wantCode(t, "createAPIKey(every project)", m.do(t, k.token, q, nil), wide)
				wantCode(t, "createAPIKey(search by name)", m.do(t, k.token, q, map[string]any{"p": []string{"search"}}), wide)
			}},
		"Mutation.revokeAPIKey": {probe: query(`mutation { revokeAPIKey(input: {id: "nope"}) { apiKey { id } } }`, nil),
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				m.checkKeyChange(t, k, `mutation($id: ID!) { revokeAPIKey(input: {id: $id}) { apiKey { id } } }`)
			}},
		"Mutation.rotateAPIKey": {probe: query(`mutation { rotateAPIKey(input: {id: "nope"}) { apiKey { id } } }`, nil),
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				m.checkKeyChange(t, k, `mutation($id: ID!) { rotateAPIKey(input: {id: $id}) { apiKey { id } } }`)
			}},
		"Mutation.updateAPIKey": {probe: query(`mutation { updateAPIKey(input: {id: "nope", name: "n"}) { apiKey { id } } }`, nil),
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				m.checkKeyChange(t, k, `mutation($id: ID!) { updateAPIKey(input: {id: $id, name: "renamed"}) { apiKey { id } } }`)
			}},
		"Mutation.executeCommand": {probe: func(*scopeMatrix, matrixKey) (string, map[string]any) { return executeM, map[string]any{"p": "pay"} },
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				wantCode(t, "executeCommand(pay)", m.do(t, k.token, executeM, map[string]any{"p": "pay"}), "")
				wantCode(t, "executeCommand(search)", m.do(t, k.token, executeM, map[string]any{"p": "search"}), outCode(k, ""))
			}},
		"Mutation.runAgent": {probe: func(*scopeMatrix, matrixKey) (string, map[string]any) { return runAgentM, map[string]any{"p": "pay"} },
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				wantCode(t, "runAgent(pay)", m.do(t, k.token, runAgentM, map[string]any{"p": "pay"}), "")
				wantCode(t, "runAgent(search)", m.do(t, k.token, runAgentM, map[string]any{"p": "search"}), outCode(k, ""))
			}},
		"Mutation.cancelCommand": {probe: byID(cancelM, cmdPay), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			// Both ended: reaching one is CONFLICT, not reaching it NOT_FOUND.
			wantCode(t, "cancelCommand(pay's)", m.do(t, k.token, cancelM, map[string]any{"id": m.cmdPay}), domain.ECONFLICT)
			wantCode(t, "cancelCommand(search's)", m.do(t, k.token, cancelM, map[string]any{"id": m.cmdSearch}), outCode(k, domain.ECONFLICT))
		}},
		"Mutation.createWebhook": {probe: query(`mutation { createWebhook(input: {url: "http://127.0.0.1:9/h", events: ["command.finished"]}) { secret } }`, nil),
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				q := `mutation($e: [String!]!) { createWebhook(input: {url: "http://127.0.0.1:9/h", events: $e}) { webhook { id projects { unrestricted } } } }`
				r := m.do(t, k.token, q, map[string]any{"e": []string{"command.finished"}})
				wantCode(t, "createWebhook", r, "")
				if got := path(r.Data, "createWebhook", "webhook", "projects", "unrestricted"); got != !k.restricted {
					t.Errorf("the endpoint's scope is unrestricted = %v, its creator's restricted = %v", got, k.restricted)
				}
				keyEvent := ""
				if k.restricted {
					keyEvent = domain.EINVALID
				}
				wantCode(t, "createWebhook(key.revoked)", m.do(t, k.token, q, map[string]any{"e": []string{"key.revoked"}}), keyEvent)
			}},
		"Mutation.updateWebhook":       {probe: byID(updateM, ownHook), check: m2(updateM, "")},
		"Mutation.rotateWebhookSecret": {probe: byID(rotateHM, ownHook), check: m2(rotateHM, "")},
		"Mutation.testWebhook":         {probe: byID(testHM, ownHook), check: m2(testHM, "")},
		"Mutation.redeliverWebhookDelivery": {probe: byID(redeliverM, func(_ *scopeMatrix, k matrixKey) string { return k.delivery }),
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				wantCode(t, "redeliver(own)", m.do(t, k.token, redeliverM, map[string]any{"id": k.delivery}), "")
				wantCode(t, "redeliver(unrestricted endpoint's)", m.do(t, k.token, redeliverM, map[string]any{"id": m.deliveryAdmin}), outCode(k, ""))
			}},
		"Mutation.deleteWebhook": {probe: byID(deleteM, ownHook), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			wantCode(t, "deleteWebhook(unrestricted one)", m.do(t, k.token, deleteM, map[string]any{"id": m.hookAdmin}), outCode(k, ""))
			if !k.restricted {
				m.hookAdmin, m.deliveryAdmin = m.newAdminHook(t) // deleted: the next keys need one
			}
			own := m.do(t, k.token, `mutation { createWebhook(input: {url: "http://127.0.0.1:9/d", events: ["command.failed"]}) { webhook { id } } }`, nil)
			wantCode(t, "deleteWebhook(own)", m.do(t, k.token, deleteM, map[string]any{"id": path(own.Data, "createWebhook", "webhook", "id")}), "")
		}},
		"Mutation.setSecret": {probe: func(*scopeMatrix, matrixKey) (string, map[string]any) {
			return setSecretM, map[string]any{"p": "pay", "n": "PROBE"}
		},
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				wantCode(t, "setSecret(pay)", m.do(t, k.token, setSecretM, map[string]any{"p": "pay", "n": "MATRIX"}), "")
				wantCode(t, "setSecret(search)", m.do(t, k.token, setSecretM, map[string]any{"p": "search", "n": "MATRIX"}), outCode(k, ""))
			}},
		"Mutation.deleteSecret": {probe: func(*scopeMatrix, matrixKey) (string, map[string]any) {
			return deleteSecretM, map[string]any{"p": "pay", "n": "PROBE"}
		},
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				for _, p := range []string{"pay", "search"} {
					wantCode(t, "setSecret as the admin", m.do(t, m.ts.token, setSecretM, map[string]any{"p": p, "n": "DOOMED"}), "")
				}
				wantCode(t, "deleteSecret(pay)", m.do(t, k.token, deleteSecretM, map[string]any{"p": "pay", "n": "DOOMED"}), "")
				wantCode(t, "deleteSecret(search)", m.do(t, k.token, deleteSecretM, map[string]any{"p": "search", "n": "DOOMED"}), outCode(k, ""))
			}},
		"Mutation.setProjectNetwork": {probe: func(*scopeMatrix, matrixKey) (string, map[string]any) {
			return setNetworkM, map[string]any{"p": "pay"}
		},
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				wantCode(t, "setProjectNetwork(pay)", m.do(t, k.token, setNetworkM, map[string]any{"p": "pay"}), "")
				wantCode(t, "setProjectNetwork(search)", m.do(t, k.token, setNetworkM, map[string]any{"p": "search"}), outCode(k, ""))
			}},
		"Subscription.commandOutput": {probe: byID(outputS, cmdPay), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			wantCode(t, "commandOutput(pay's)", m.subscribe(t, k.token, outputS, map[string]any{"id": m.cmdPay}, nil), "")
			wantCode(t, "commandOutput(search's)", m.subscribe(t, k.token, outputS, map[string]any{"id": m.cmdSearch}, nil), outCode(k, ""))
		}},
		"Subscription.agentEvents": {probe: byID(agentS, runPay), check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
			wantCode(t, "agentEvents(pay's)", m.subscribe(t, k.token, agentS, map[string]any{"id": m.runPay}, nil), "")
			wantCode(t, "agentEvents(search's)", m.subscribe(t, k.token, agentS, map[string]any{"id": m.runSearch}, nil), outCode(k, ""))
		}},
		"Subscription.commandEvents": {probe: func(*scopeMatrix, matrixKey) (string, map[string]any) { return eventsS, map[string]any{"p": "pay"} },
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				// Commands are queued over and over until the stream sends
				// one: it opens before its resolver has subscribed.
				events := func(project string) gqlResult {
					stop := make(chan struct{})
					defer close(stop)
					return m.subscribe(t, k.token, eventsS, map[string]any{"p": project}, func() {
						m.repeat(stop, func() {
							_, _ = m.ts.commands.Execute(domain.NewOperatorContext(context.Background()), domain.ExecuteCommand{ProjectID: project, Argv: []string{"true"}})
						})
					})
				}
				r := events("pay")
				wantCode(t, "commandEvents(pay)", r, "")
				if path(r.Data, "commandEvents", "projectId") != "pay" {
					t.Errorf("commandEvents(pay) sent %v", r.Data)
				}
				wantCode(t, "commandEvents(search)", events("search"), outCode(k, ""))
			}},
		"Subscription.projectStatus": {probe: func(*scopeMatrix, matrixKey) (string, map[string]any) { return statusS, map[string]any{"p": "pay"} },
			check: func(t *testing.T, m *scopeMatrix, k matrixKey) {
				wantCode(t, "projectStatus(pay)", m.subscribe(t, k.token, statusS, map[string]any{"p": "pay"}, nil), "")
				wantCode(t, "projectStatus(search)", m.subscribe(t, k.token, statusS, map[string]any{"p": "search"}, nil), outCode(k, ""))
				// Every project: the watch starts with the current state of
				// each project in scope (demo, pay and search for an
				// unrestricted key, in ID order), then search changes, then
				// pay, over and over; a restricted key is sent pay only.
				stop := make(chan struct{})
				r := m.subscribe(t, k.token, statusS, nil, func() {
					m.repeat(stop, func() {
						for _, id := range []string{"search", "pay"} {
							p, err := m.ts.backend.projects.FindProjectByID(context.Background(), id)
							if err != nil {
								return
							}
							changed := *p
							changed.Status = domain.ProjectNotReady
							m.ts.hub.Publish(domain.ProjectsTopic, domain.Event{Kind: domain.EventProject, Project: &changed})
						}
					})
				})
				close(stop)
				got := path(r.Data, "projectStatus", "id")
				if k.restricted && got != "pay" || !k.restricted && got != "demo" {
					t.Errorf("projectStatus (every project) sent %v first to a key restricted = %v", got, k.restricted)
				}
			}},
	}
}

// repeat calls f every 50 ms until stop closes: the SSE stream is open
// before its resolver has subscribed, so a change made once is made again
// until the subscriber has seen one.
func (m *scopeMatrix) repeat(stop <-chan struct{}, f func()) {
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			f()
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
}

// m2 checks a webhook mutation: the key's own endpoint works, one made by
// an unrestricted key is NOT_FOUND to a restricted key.
func m2(q, ok string) func(t *testing.T, m *scopeMatrix, k matrixKey) {
	return func(t *testing.T, m *scopeMatrix, k matrixKey) {
		t.Helper()
		wantCode(t, "own endpoint", m.do(t, k.token, q, map[string]any{"id": k.hook}), ok)
		wantCode(t, "unrestricted endpoint", m.do(t, k.token, q, map[string]any{"id": m.hookAdmin}), outCode(k, ok))
	}
}

// checkKeyChange runs q (revoke or rotate) as k on a key k made within its
// scope, which works, and on an unrestricted key, which is FORBIDDEN unless
// k is an unrestricted admin.
func (m *scopeMatrix) checkKeyChange(t *testing.T, k matrixKey, q string) {
	t.Helper()
	in := map[string]any{"p": []string{"pay"}}
	if k.scope == "selector" {
		in = map[string]any{"s": []string{"team=payments"}}
	}
	var child struct {
		CreateAPIKey struct{ APIKey struct{ ID string } }
	}
	if errs := m.ts.gql(t, k.token, "child", `mutation($p: [ID!], $s: [String!]) { createAPIKey(input: {name: "c", scopes: [COMMANDS_READ], projects: $p, projectSelectors: $s}) { apiKey { id } } }`, in, &child); len(errs) > 0 {
		t.Fatal(errs)
	}
	wantCode(t, "own child", m.do(t, k.token, q, map[string]any{"id": child.CreateAPIKey.APIKey.ID}), "")
	victim, _, err := m.ts.keys.Create(domain.NewOperatorContext(context.Background()), domain.CreateAPIKey{Name: "victim", Scopes: []string{"commands:read"}})
	if err != nil {
		t.Fatal(err)
	}
	wide := ""
	if k.restricted {
		wide = domain.ENOTFOUND // out of its scope, the key is not there
	}
	wantCode(t, "unrestricted key", m.do(t, k.token, q, map[string]any{"id": victim.ID}), wide)
}

// nestedCases are the fields below the root that lead to a project's data.
// Each is reached only through a parent the caller may see, and must not
// widen it.
func nestedCases() map[string]func(t *testing.T, m *scopeMatrix, k matrixKey) {
	return map[string]func(t *testing.T, m *scopeMatrix, k matrixKey){
		"Project.commands": func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, `{ projects(first: 10) { nodes { id commands(first: 20) { nodes { id projectId } } } } }`, nil)
			wantCode(t, "projects.commands", r, "")
			nodes, _ := path(r.Data, "projects", "nodes").([]any)
			var seen []string
			for _, n := range nodes {
				seen = append(seen, ids(path(n, "commands"))...)
			}
			wantListed(t, "Project.commands", k, seen, m.cmdPay, m.cmdSearch)
		},
		"Project.secrets": func(t *testing.T, m *scopeMatrix, k matrixKey) {
			for _, p := range []string{"pay", "search"} {
				wantCode(t, "setSecret as the admin", m.do(t, m.ts.token, `mutation($p: ID!, $n: String!) {
					setSecret(input: {projectId: $p, name: $n, value: "v"}) { secret { name } } }`,
					map[string]any{"p": p, "n": "LISTED_" + strings.ToUpper(p)}), "")
			}
			r := m.do(t, k.token, `{ projects(first: 10) { nodes { id secrets { projectId name } } } }`, nil)
			wantCode(t, "projects.secrets", r, "")
			var seen []string
			nodes, _ := path(r.Data, "projects", "nodes").([]any)
			for _, n := range nodes {
				secrets, _ := path(n, "secrets").([]any)
				for _, sec := range secrets {
					seen = append(seen, path(sec, "projectId").(string)+"/"+path(sec, "name").(string))
				}
			}
			wantListed(t, "Project.secrets", k, seen, "pay/LISTED_PAY", "search/LISTED_SEARCH")
		},
		"Command.project": func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, `{ commands(first: 100) { nodes { id project { id } } } }`, nil)
			wantCode(t, "commands.project", r, "")
			nodes, _ := path(r.Data, "commands", "nodes").([]any)
			var projects []string
			for _, n := range nodes {
				if id, ok := path(n, "project", "id").(string); ok {
					projects = append(projects, id)
				}
			}
			wantListed(t, "Command.project", k, projects, "pay", "search")
		},
		"CommandFinished.command": func(t *testing.T, m *scopeMatrix, k matrixKey) {
			q := `subscription($id: ID!) { commandOutput(commandId: $id, afterSeq: 0) { ... on CommandFinished { command { id project { id } } } ... on OutputChunk { seq } } }`
			r := m.subscribe(t, k.token, q, map[string]any{"id": m.cmdPay}, nil)
			wantCode(t, "commandOutput(pay's).command", r, "")
		},
		"AgentRun.command": func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, `query($id: ID!) { agentRun(id: $id) { command { id projectId } } }`, map[string]any{"id": m.runPay})
			wantCode(t, "agentRun(pay's).command", r, "")
			if path(r.Data, "agentRun", "command", "id") != m.runPay {
				t.Errorf("agentRun(pay's).command = %v", path(r.Data, "agentRun", "command"))
			}
		},
		"AgentRun.project": func(t *testing.T, m *scopeMatrix, k matrixKey) {
			r := m.do(t, k.token, `query($id: ID!) { agentRun(id: $id) { project { id } } }`, map[string]any{"id": m.runPay})
			wantCode(t, "agentRun(pay's).project", r, "")
		},
		"AgentSession.project": func(t *testing.T, m *scopeMatrix, k matrixKey) {
			// Sessions come only from runs that ended with the agent's
			// summary: the project is reached through its own scope check.
			r := m.do(t, k.token, `query { agentSessions(projectId: "pay") { project { id } } }`, nil)
			wantCode(t, "agentSessions(pay).project", r, "")
		},
		"AgentRunEnded.command": func(t *testing.T, m *scopeMatrix, k matrixKey) {
			q := `subscription($id: ID!) { agentEvents(runId: $id) { ... on AgentRunEnded { command { id project { id } } } ... on AgentRaw { seq } } }`
			r := m.subscribe(t, k.token, q, map[string]any{"id": m.runPay}, nil)
			wantCode(t, "agentEvents(pay's).command", r, "")
		},
		"Webhook.deliveries": func(t *testing.T, m *scopeMatrix, k matrixKey) {
			// Newest first, and the other cases add deliveries meanwhile:
			// page through all of them.
			q := `query($id: ID!, $after: String) { webhook(id: $id) { deliveries(first: 100, after: $after) {
				nodes { id } pageInfo { hasNextPage endCursor } } } }`
			var got []string
			for after := any(nil); ; {
				r := m.do(t, k.token, q, map[string]any{"id": k.hook, "after": after})
				wantCode(t, "own webhook.deliveries", r, "")
				got = append(got, ids(path(r.Data, "webhook", "deliveries"))...)
				if more, _ := path(r.Data, "webhook", "deliveries", "pageInfo", "hasNextPage").(bool); !more {
					break
				}
				if after = path(r.Data, "webhook", "deliveries", "pageInfo", "endCursor"); after == nil {
					t.Fatal("hasNextPage without an endCursor")
				}
			}
			if !slices.Contains(got, k.delivery) {
				t.Errorf("own endpoint's deliveries %q lack %s", got, k.delivery)
			}
			wantCode(t, "unrestricted webhook.deliveries", m.do(t, k.token, q, map[string]any{"id": m.hookAdmin}), outCode(k, ""))
		},
	}
}

// scopedTypes are the types that carry a project's data, or lead to it.
var scopedTypes = []string{"Project", "Command", "CommandConnection", "ProjectConnection", "Webhook",
	"WebhookConnection", "WebhookDeliveryConnection", "AuditEntryConnection", "APIKey", "APIKeyConnection", "Secret"}

// TestSchema_EveryFieldHonoursProjectScope runs the matrix. It is the
// project-scope half of resolvers' TestSchema_EveryRootFieldDecidesAccess:
// that one checks every root field states its scope; this one that every
// root field, and every nested field reaching a scoped type, does what a
// key's project scope says, on the real server.
func TestSchema_EveryFieldHonoursProjectScope(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &resolvers.Resolver{}}).Schema()
	roots, nested := rootCases(), nestedCases()
	var rootFields []*ast.FieldDefinition
	var rootNames []string
	for _, root := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
		for _, f := range root.Fields {
			if strings.HasPrefix(f.Name, "__") {
				continue
			}
			name := root.Name + "." + f.Name
			if _, ok := roots[name]; !ok {
				t.Errorf("%s has no entry in the project-scope matrix: add one to rootCases", name)
			}
			rootFields, rootNames = append(rootFields, f), append(rootNames, name)
		}
	}
	for name, def := range schema.Types {
		if def.Kind != ast.Object || def.BuiltIn || strings.HasPrefix(name, "__") || def == schema.Query || def == schema.Mutation || def == schema.Subscription ||
			strings.HasSuffix(name, "Payload") || strings.HasSuffix(name, "Edge") || strings.HasSuffix(name, "Connection") {
			continue
		}
		for _, f := range def.Fields {
			if slices.Contains(scopedTypes, f.Type.Name()) {
				if _, ok := nested[name+"."+f.Name]; !ok {
					t.Errorf("%s.%s leads to %s but has no entry in the project-scope matrix: add one to nestedCases", name, f.Name, f.Type.Name())
				}
			}
		}
	}
	for name := range roots {
		if !slices.Contains(rootNames, name) {
			t.Errorf("rootCases has %s, which is not in the schema", name)
		}
	}
	if t.Failed() {
		return
	}

	m, keys := newScopeMatrix(t)
	for _, k := range keys {
		for _, name := range rootNames {
			t.Run(k.scope+"/"+name, func(t *testing.T) { roots[name].check(t, m, k) })
		}
		for name, check := range nested {
			t.Run(k.scope+"/"+name, func(t *testing.T) { check(t, m, k) })
		}
	}
	// A key without the field's scope is FORBIDDEN, whatever its project
	// scope.
	for i, f := range rootFields {
		d := f.Directives.ForName("hasScope")
		if d == nil {
			continue // @authenticated: any key
		}
		scope := domain.Scope(strings.ReplaceAll(strings.ToLower(d.Arguments.ForName("scope").Value.Raw), "_", ":"))
		for _, k := range keys {
			lacking := m.keyLacking(t, scope, k.scope)
			t.Run("lacking-"+string(scope)+"/"+k.scope+"/"+rootNames[i], func(t *testing.T) {
				q, vars := roots[rootNames[i]].probe(m, k)
				var r gqlResult
				if strings.HasPrefix(rootNames[i], "Subscription.") {
					r = m.subscribe(t, lacking, q, vars, nil)
				} else {
					r = m.do(t, lacking, q, vars)
				}
				wantCode(t, rootNames[i]+" without "+string(scope), r, domain.EFORBIDDEN)
			})
		}
	}
}

// projectScopes are the project scopes of the matrix's keys.
var projectScopes = []struct {
	name                string
	projects, selectors []string
}{
	{"every", nil, nil},
	{"name", []string{"pay"}, nil},
	{"selector", nil, []string{"team=payments"}},
}

// runAgent queues an agent run in project as the admin. (No agent CLI is
// installed: it fails, which is an end as good as any here.)
func (m *scopeMatrix) runAgent(t *testing.T, project string) string {
	t.Helper()
	var r struct {
		RunAgent struct{ AgentRun struct{ ID string } }
	}
	if errs := m.ts.gql(t, m.ts.token, "run", `mutation($p: ID!) { runAgent(input: {projectId: $p, prompt: "hi"}) { agentRun { id } } }`,
		map[string]any{"p": project}, &r); len(errs) > 0 {
		t.Fatal(errs)
	}
	return r.RunAgent.AgentRun.ID
}

// newScopeMatrix starts the server with projects pay and search, their
// commands, endpoints and keys of each project scope.
func newScopeMatrix(t *testing.T) (*scopeMatrix, []matrixKey) {
	ts := startTestServer(t, webhookTestEnv)
	for id, team := range map[string]string{"pay": "payments", "search": "search"} {
		dir := filepath.Join(ts.cfg.Workspace, id, ".rdev")
		if err := os.MkdirAll(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "labels"), []byte("team="+team+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := &scopeMatrix{ts: ts}
	m.cmdPay = ts.execute(t, map[string]any{"projectId": "pay", "argv": []string{"echo", "pay"}})
	m.cmdSearch = ts.execute(t, map[string]any{"projectId": "search", "argv": []string{"echo", "search"}})
	m.runPay, m.runSearch = m.runAgent(t, "pay"), m.runAgent(t, "search")
	for _, id := range []string{m.cmdPay, m.cmdSearch, m.runPay, m.runSearch} {
		if !waitFor(20*time.Second, func() bool {
			c, err := ts.commands.Get(domain.NewOperatorContext(context.Background()), id)
			return err == nil && c.Status.Final()
		}) {
			t.Fatalf("command %s did not finish", id)
		}
	}
	m.hookAdmin, m.deliveryAdmin = m.newAdminHook(t)
	var viewer struct{ Viewer struct{ ID string } }
	if errs := ts.gql(t, ts.token, "v", `{ viewer { id } }`, nil, &viewer); len(errs) > 0 {
		t.Fatal(errs)
	}
	m.adminKeyID = viewer.Viewer.ID

	var keys []matrixKey
	for _, ps := range projectScopes {
		k, token, err := ts.keys.Create(domain.NewOperatorContext(context.Background()), domain.CreateAPIKey{
			Name: "matrix " + ps.name, Scopes: []string{"admin"}, Projects: ps.projects, ProjectSelectors: ps.selectors,
		})
		if err != nil {
			t.Fatal(err)
		}
		mk := matrixKey{scope: ps.name, restricted: !k.Projects.Unrestricted(), id: k.ID, token: token}
		mk.hook, mk.delivery = m.newHook(t, token)
		keys = append(keys, mk)
	}
	return m, keys
}

// newHook makes an endpoint as token, pings it, and returns it with the
// ping's delivery.
func (m *scopeMatrix) newHook(t *testing.T, token string) (hook, delivery string) {
	t.Helper()
	r := m.do(t, token, `mutation { createWebhook(input: {url: "http://127.0.0.1:9/h", events: ["command.finished"]}) { webhook { id } } }`, nil)
	hook, _ = path(r.Data, "createWebhook", "webhook", "id").(string)
	r = m.do(t, token, `mutation($id: ID!) { testWebhook(input: {id: $id}) { delivery { id } } }`, map[string]any{"id": hook})
	delivery, _ = path(r.Data, "testWebhook", "delivery", "id").(string)
	if hook == "" || delivery == "" {
		t.Fatalf("making an endpoint and its ping: %+v", r.Errors)
	}
	return hook, delivery
}

func (m *scopeMatrix) newAdminHook(t *testing.T) (hook, delivery string) {
	t.Helper()
	return m.newHook(t, m.ts.token)
}

// keyLacking returns a key of the project scope named ps holding every
// scope but scope (and not admin).
func (m *scopeMatrix) keyLacking(t *testing.T, scope domain.Scope, ps string) string {
	t.Helper()
	var scopes []string
	for _, s := range domain.AllScopes {
		if s != scope && s != domain.ScopeAdmin {
			scopes = append(scopes, string(s))
		}
	}
	for _, p := range projectScopes {
		if p.name != ps {
			continue
		}
		_, token, err := m.ts.keys.Create(domain.NewOperatorContext(context.Background()), domain.CreateAPIKey{
			Name: "lacking " + string(scope), Scopes: scopes, Projects: p.projects, ProjectSelectors: p.selectors,
		})
		if err != nil {
			t.Fatal(err)
		}
		return token
	}
	t.Fatalf("no project scope %q", ps)
	return ""
}
