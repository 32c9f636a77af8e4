package main_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// hookReceiver is a loopback endpoint that verifies each message with the
// Standard Webhooks reference library and keeps the verified ones by
// webhook-id (a message sent again counts once).
type hookReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	verifier *standardwebhooks.Webhook
	byID     map[string]hookMessage
	order    []string
	rejected []string
}

type hookMessage struct {
	Type string
	Data map[string]any
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{byID: map[string]hookMessage{}}
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
		var m hookMessage
		_ = json.Unmarshal(body, &m)
		id := req.Header.Get("webhook-id")
		if _, dup := r.byID[id]; !dup {
			r.order = append(r.order, id)
		}
		r.byID[id] = m
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *hookReceiver) setSecret(t *testing.T, secret string) {
	t.Helper()
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.verifier = v
	r.mu.Unlock()
}

// events returns, per command ID, the types of its messages in arrival
// order, once done says they are complete or the deadline passes.
func (r *hookReceiver) events(t *testing.T, timeout time.Duration, done func(map[string][]string) bool) map[string][]string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		if len(r.rejected) > 0 {
			r.mu.Unlock()
			t.Fatalf("the reference verifier rejected messages: %v", r.rejected)
		}
		byCommand := map[string][]string{}
		for _, id := range r.order {
			m := r.byID[id]
			if c, ok := m.Data["id"].(string); ok {
				byCommand[c] = append(byCommand[c], m.Type)
			}
		}
		r.mu.Unlock()
		if done(byCommand) || time.Now().After(deadline) {
			return byCommand
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var webhookEnv = []string{
	"RDEV_WEBHOOK_ALLOW_HTTP=true", "RDEV_WEBHOOK_ALLOW_CIDRS=127.0.0.0/8", "RDEV_WEBHOOK_POLL_INTERVAL=50ms",
	"RDEV_WEBHOOK_TIMEOUT=2s", "RDEV_LEASE_TTL=2s",
}

func createHook(t *testing.T, s *server, token, url string) string {
	t.Helper()
	r := s.query(token, `mutation($url: String!) { createWebhook(input: {url: $url,
		events: ["command.queued", "command.started", "command.finished", "command.failed"]}) { webhook { id } secret } }`,
		map[string]any{"url": url})
	if len(r.Errors) > 0 {
		t.Fatalf("createWebhook: %+v", r.Errors)
	}
	return r.Data["createWebhook"].(map[string]any)["secret"].(string)
}

func executeTrue(t *testing.T, s *server, token string, argv ...string) string {
	t.Helper()
	r := s.query(token, `mutation($argv: [String!]!) { executeCommand(input: {projectId: "demo", argv: $argv}) { command { id } } }`,
		map[string]any{"argv": argv})
	if len(r.Errors) > 0 {
		t.Fatalf("executeCommand: %+v", r.Errors)
	}
	return r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
}

// complete reports whether a command's messages include its queueing and,
// after it, its end: an endpoint gets its messages in event order, even
// when an earlier one had to be retried.
func complete(types []string) bool {
	queued := slices.Index(types, "command.queued")
	end := slices.IndexFunc(types, func(t string) bool { return t == "command.finished" || t == "command.failed" })
	return queued >= 0 && end > queued
}

// TestE2E_Webhooks runs a command through the real binary on Postgres and
// receives its queued, started and finished messages, verified.
func TestE2E_Webhooks(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	in := newInstance(t, append([]string{"DATABASE_URL=" + url}, webhookEnv...)...)
	s := in.serve()
	token, _ := in.createKey("--name", "hooks", "--admin")
	rcv := newHookReceiver(t)
	rcv.setSecret(t, createHook(t, s, token, rcv.URL+"/rdev"))

	cmd := executeTrue(t, s, token, "true")
	got := rcv.events(t, 20*time.Second, func(m map[string][]string) bool { return len(m[cmd]) >= 3 })
	want := []string{"command.queued", "command.started", "command.finished"}
	if len(got[cmd]) != 3 || got[cmd][0] != want[0] || got[cmd][1] != want[1] || got[cmd][2] != want[2] {
		t.Fatalf("messages of %s = %v, want %v", cmd, got[cmd], want)
	}
}

// TestE2E_WebhooksKill9 kills rdev with SIGKILL while commands and their
// messages are in flight, starts it again, and receives every command's
// queued message and its end (finished, or failed for those interrupted by
// the kill): the outbox lost nothing.
func TestE2E_WebhooksKill9(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	in := newInstance(t, append([]string{"DATABASE_URL=" + url}, webhookEnv...)...)
	s := in.serve()
	token, _ := in.createKey("--name", "hooks", "--admin")
	rcv := newHookReceiver(t)
	secret := createHook(t, s, token, rcv.URL+"/rdev")

	// The receiver refuses everything until it knows the secret, so the
	// first messages are still in the outbox when rdev dies.
	var cmds []string
	for range 8 {
		cmds = append(cmds, executeTrue(t, s, token, "sleep", "0.3"))
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.exited
	rcv.setSecret(t, secret)

	s = in.serve()
	for range 4 {
		cmds = append(cmds, executeTrue(t, s, token, "true"))
	}
	got := rcv.events(t, 90*time.Second, func(m map[string][]string) bool {
		for _, c := range cmds {
			if !complete(m[c]) {
				return false
			}
		}
		return true
	})
	for _, c := range cmds {
		if !complete(got[c]) {
			t.Errorf("messages of %s = %v, want command.queued, then its end", c, got[c])
		}
	}
}
