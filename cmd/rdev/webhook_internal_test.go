package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/rdev-hq/rdev/domain"
)

// receiver is a webhook endpoint on loopback that verifies every message
// with the Standard Webhooks reference library.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	verifier *standardwebhooks.Webhook
	messages []receivedMessage
	rejected []string
	status   int
}

type receivedMessage struct {
	ID, Type  string
	Timestamp time.Time
	Data      map[string]any
	// TraceParent is the request's traceparent header.
	TraceParent string `json:"-"`
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{status: http.StatusNoContent}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.verifier == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if err := r.verifier.Verify(body, req.Header); err != nil {
			r.rejected = append(r.rejected, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m receivedMessage
		if err := json.Unmarshal(body, &m); err != nil {
			r.rejected = append(r.rejected, err.Error())
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		m.ID, m.TraceParent = req.Header.Get("webhook-id"), req.Header.Get("traceparent")
		r.messages = append(r.messages, m)
		w.WriteHeader(r.status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) setSecret(t *testing.T, secret string) {
	t.Helper()
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.verifier = v
	r.mu.Unlock()
}

// waitFor returns the messages received once there are n of them.
func (r *receiver) waitFor(t *testing.T, n int) []receivedMessage {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r.mu.Lock()
		got, rejected := append([]receivedMessage(nil), r.messages...), append([]string(nil), r.rejected...)
		r.mu.Unlock()
		if len(rejected) > 0 {
			t.Fatalf("the reference verifier rejected messages: %v", rejected)
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("received %d messages, want %d: %+v", len(got), n, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var webhookTestEnv = map[string]string{
	"RDEV_WEBHOOK_ALLOW_HTTP": "true", "RDEV_WEBHOOK_ALLOW_CIDRS": "127.0.0.0/8", "RDEV_WEBHOOK_POLL_INTERVAL": "20ms",
}

const createWebhookMutation = `mutation($url: String!, $events: [String!]!) {
	createWebhook(input: {url: $url, events: $events, description: "test"}) { webhook { id events enabled } secret } }`

func (ts *testServer) createWebhook(t *testing.T, url string, events ...string) (id, secret string) {
	t.Helper()
	var out struct {
		CreateWebhook struct {
			Webhook struct{ ID string }
			Secret  string
		}
	}
	if errs := ts.gql(t, ts.token, "create-webhook", createWebhookMutation, map[string]any{"url": url, "events": events}, &out); len(errs) > 0 {
		t.Fatalf("createWebhook: %+v", errs)
	}
	return out.CreateWebhook.Webhook.ID, out.CreateWebhook.Secret
}

// A command's progress reaches a loopback receiver as signed messages, in
// order, each verified by the reference library, and the deliveries say so.
func TestServer_WebhookDeliveries(t *testing.T) {
	ts := startTestServer(t, webhookTestEnv)
	rcv := newReceiver(t)
	id, secret := ts.createWebhook(t, rcv.URL+"/hook", "command.queued", "command.started", "command.finished", "key.revoked")
	rcv.setSecret(t, secret)

	cmd := ts.execute(t, map[string]any{"projectId": "demo", "argv": []string{"true"}})
	got := rcv.waitFor(t, 3)
	var types []string
	for _, m := range got {
		types = append(types, m.Type)
		if m.Data["id"] != cmd {
			t.Errorf("%s is about %v, want command %s", m.Type, m.Data["id"], cmd)
		}
	}
	if len(types) != 3 || types[0] != "command.queued" || types[1] != "command.started" || types[2] != "command.finished" {
		t.Fatalf("received %v, want command.queued, command.started, command.finished", types)
	}
	if got[2].Data["status"] != "SUCCEEDED" || got[2].Data["exitCode"] != 0.0 || got[0].ID == got[1].ID {
		t.Errorf("messages %+v", got)
	}

	// Revoking a key is an event too; a key's creation is not.
	var key struct {
		CreateAPIKey struct{ APIKey struct{ ID string } }
	}
	if errs := ts.gql(t, ts.token, "k", `mutation { createAPIKey(input: {name: "doomed", scopes: [PROJECTS_READ]}) { apiKey { id } } }`, nil, &key); len(errs) > 0 {
		t.Fatal(errs)
	}
	if errs := ts.gql(t, ts.token, "r", `mutation($id: ID!) { revokeAPIKey(input: {id: $id}) { apiKey { id } } }`, map[string]any{"id": key.CreateAPIKey.APIKey.ID}, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	if m := rcv.waitFor(t, 4)[3]; m.Type != domain.EventKeyRevoked || m.Data["id"] != key.CreateAPIKey.APIKey.ID {
		t.Errorf("fourth message = %+v, want key.revoked of the key", m)
	}

	// A ping goes out when asked for.
	if errs := ts.gql(t, ts.token, "p", `mutation($id: ID!) { testWebhook(input: {id: $id}) { delivery { id status } } }`, map[string]any{"id": id}, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	if m := rcv.waitFor(t, 5)[4]; m.Type != domain.EventPing || m.Data["webhookId"] != id {
		t.Errorf("fifth message = %+v, want the ping", m)
	}

	var deliveries struct {
		Webhook struct {
			Deliveries struct {
				Nodes []struct {
					MessageID, EventType, Status, RequestExcerpt, Error string
					AttemptCount                                        int
					ResponseCode, LatencyMs                             *int
					NextAttemptAt, LastAttemptAt                        *time.Time
				}
			}
		}
	}
	q := `query($id: ID!) { webhook(id: $id) { deliveries(first: 10) { nodes {
		messageId eventType status attemptCount responseCode error latencyMs nextAttemptAt lastAttemptAt requestExcerpt } } } }`
	// The receiver answers before the attempt is recorded: wait for the
	// records.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if errs := ts.gql(t, ts.token, "d", q, map[string]any{"id": id}, &deliveries); len(errs) > 0 {
			t.Fatal(errs)
		}
		pending := false
		for _, n := range deliveries.Webhook.Deliveries.Nodes {
			pending = pending || n.Status == "PENDING"
		}
		if !pending || time.Now().After(deadline) {
			break
		}
	}
	nodes := deliveries.Webhook.Deliveries.Nodes
	if len(nodes) != 5 {
		t.Fatalf("%d deliveries, want 5", len(nodes))
	}
	for _, n := range nodes {
		if n.Status != "SUCCEEDED" || n.AttemptCount != 1 || n.ResponseCode == nil || *n.ResponseCode != http.StatusNoContent ||
			n.LatencyMs == nil || n.NextAttemptAt != nil || n.LastAttemptAt == nil || n.Error != "" || n.RequestExcerpt == "" {
			t.Errorf("delivery %+v, want SUCCEEDED at the first attempt with 204", n)
		}
	}
	if nodes[0].EventType != domain.EventPing || nodes[4].EventType != domain.EventCommandQueued || nodes[4].MessageID != got[0].ID {
		t.Errorf("deliveries are not newest first, or message IDs differ from the webhook-id headers: %+v", nodes)
	}
}

// Bad input to the webhook mutations gets INVALID_INPUT, an unknown endpoint
// NOT_FOUND, a key without the scope FORBIDDEN; the server keeps serving.
func TestServer_WebhookErrors(t *testing.T) {
	ts := startTestServer(t, nil) // http is not allowed here
	for name, vars := range map[string]map[string]any{
		"http":          {"url": "http://hooks.example.com/", "events": []string{"command.queued"}},
		"userinfo":      {"url": "https://a:b@hooks.example.com/", "events": []string{"command.queued"}},
		"no events":     {"url": "https://hooks.example.com/", "events": []string{}},
		"unknown event": {"url": "https://hooks.example.com/", "events": []string{"command.exploded"}},
	} {
		errs := ts.gql(t, ts.token, "bad", createWebhookMutation, vars, nil)
		if len(errs) != 1 || errs[0].Extensions.Code != "INVALID_INPUT" {
			t.Errorf("%s: errors %+v, want INVALID_INPUT", name, errs)
		}
	}
	for _, q := range []string{
		`mutation { updateWebhook(input: {id: "0000000000000000", description: "x"}) { webhook { id } } }`,
		`mutation { deleteWebhook(input: {id: "nope"}) { id } }`,
		`mutation { testWebhook(input: {id: "0000000000000000"}) { delivery { id } } }`,
		`mutation { redeliverWebhookDelivery(input: {id: "0000000000000000"}) { delivery { id } } }`,
		`{ webhook(id: "0000000000000000") { id } }`,
	} {
		if errs := ts.gql(t, ts.token, "nf", q, nil, nil); len(errs) != 1 || errs[0].Extensions.Code != "NOT_FOUND" {
			t.Errorf("%s: errors %+v, want NOT_FOUND", q, errs)
		}
	}
	id, _ := ts.createWebhook(t, "https://hooks.example.com/rdev", "command.failed")
	if errs := ts.gql(t, ts.token, "g", `mutation($id: ID!) { rotateWebhookSecret(input: {id: $id, gracePeriodSeconds: 999999999}) { secret } }`, map[string]any{"id": id}, nil); len(errs) != 1 || errs[0].Extensions.Code != "INVALID_INPUT" {
		t.Errorf("rotateWebhookSecret with a too long grace: %+v, want INVALID_INPUT", errs)
	}

	var reader struct{ CreateAPIKey struct{ Token string } }
	if errs := ts.gql(t, ts.token, "k", `mutation { createAPIKey(input: {name: "reader", scopes: [WEBHOOKS_READ]}) { token } }`, nil, &reader); len(errs) > 0 {
		t.Fatal(errs)
	}
	errs := ts.gql(t, reader.CreateAPIKey.Token, "w", createWebhookMutation, map[string]any{"url": "https://hooks.example.com/", "events": []string{"command.queued"}}, nil)
	if len(errs) != 1 || errs[0].Extensions.Code != "FORBIDDEN" {
		t.Errorf("createWebhook with webhooks:read only: %+v, want FORBIDDEN", errs)
	}
	var list struct {
		Webhooks struct{ Nodes []struct{ ID, URL string } }
	}
	if errs := ts.gql(t, reader.CreateAPIKey.Token, "l", `{ webhooks(first: 5) { nodes { id url } } }`, nil, &list); len(errs) > 0 {
		t.Fatal(errs)
	}
	if len(list.Webhooks.Nodes) != 1 || list.Webhooks.Nodes[0].ID != id {
		t.Errorf("webhooks = %+v, want the one created", list.Webhooks.Nodes)
	}
}

// Without RDEV_WEBHOOK_ALLOW_CIDRS a loopback receiver is never connected
// to: the attempt fails with the guard's reason and is scheduled again.
func TestServer_WebhookLoopbackRefused(t *testing.T) {
	ts := startTestServer(t, map[string]string{"RDEV_WEBHOOK_ALLOW_HTTP": "true", "RDEV_WEBHOOK_POLL_INTERVAL": "20ms"})
	var hits atomic.Int64
	rcv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer rcv.Close()
	id, _ := ts.createWebhook(t, rcv.URL, "command.queued")
	if errs := ts.gql(t, ts.token, "p", `mutation($id: ID!) { testWebhook(input: {id: $id}) { delivery { id } } }`, map[string]any{"id": id}, nil); len(errs) > 0 {
		t.Fatal(errs)
	}
	var out struct {
		Webhook struct {
			Deliveries struct {
				Nodes []struct {
					Status, Error string
					AttemptCount  int
					NextAttemptAt *time.Time
				}
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if errs := ts.gql(t, ts.token, "d", `query($id: ID!) { webhook(id: $id) { deliveries { nodes { status error attemptCount nextAttemptAt } } } }`, map[string]any{"id": id}, &out); len(errs) > 0 {
			t.Fatal(errs)
		}
		if n := out.Webhook.Deliveries.Nodes; len(n) == 1 && n[0].AttemptCount > 0 {
			if n[0].Status != "PENDING" || n[0].NextAttemptAt == nil || !strings.Contains(n[0].Error, "loopback") {
				t.Errorf("delivery %+v, want PENDING with a retry and the refusal", n[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no attempt was made: %+v", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the receiver was reached %d times", n)
	}
}
