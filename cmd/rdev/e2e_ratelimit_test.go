package main_test

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// post sends a GraphQL request and returns the response and its headers,
// for use from any goroutine.
func (s *server) post(token, query string) (response, http.Header, error) {
	body, _ := json.Marshal(map[string]any{"query": query})
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodPost, s.url+"/graphql", bytes.NewReader(body)) //nolint:gosec // the test's own server
	if err != nil {
		return response{}, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req) //nolint:gosec // the test's own server
	if err != nil {
		return response{}, nil, err
	}
	defer func() { _ = res.Body.Close() }()
	var r response
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return response{}, nil, fmt.Errorf("response of %d is not JSON: %w", res.StatusCode, err)
	}
	r.Status = res.StatusCode
	return r, res.Header, nil
}

// TestE2E_RateLimitTwoProcesses is the acceptance test of the shared
// budget: 2×L concurrent requests on one key, half to each of two rdev
// processes on one Postgres, and exactly L succeed within the window; with
// the budgets in Postgres (the default there) and in Redis.
func TestE2E_RateLimitTwoProcesses(t *testing.T) {
	t.Run("Postgres", func(t *testing.T) { testRateLimitTwoProcesses(t, "postgres") })
	t.Run("Redis", func(t *testing.T) {
		url := cmp.Or(os.Getenv("RDEV_TEST_REDIS_URL"), "redis://127.0.0.1:6379/0")
		u, err := neturl.Parse(url)
		if err != nil {
			t.Fatalf("RDEV_TEST_REDIS_URL: %v", err)
		}
		conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second) //nolint:gosec // the test's own RDEV_TEST_REDIS_URL
		testenv.RequireService(t, "Redis", err)
		_ = conn.Close()
		testRateLimitTwoProcesses(t, "redis", "RATE_LIMIT_STORE=redis", "REDIS_URL="+url)
	})
}

func testRateLimitTwoProcesses(t *testing.T, store string, env ...string) {
	const limit = 10
	url, _ := testenv.PostgresSchema(t)
	// A window of 10 s (a burst of 10 at 1 a second): far longer than the
	// requests take, so none of them leaves it.
	a := newInstance(t, append([]string{"DATABASE_URL=" + url, "RATE_LIMIT_RPS=1", fmt.Sprintf("RATE_LIMIT_BURST=%d", limit)}, env...)...)
	token, _ := a.createKey("--name", "shared", "--admin")
	b := &instance{t: t, env: a.env, workspace: a.workspace}
	sa, sb := a.serve(), b.serve()
	for _, s := range []*server{sa, sb} {
		if !s.waitOutput("rate_limit_store=" + store) {
			t.Fatalf("the server does not keep budgets in %s:\n%s", store, s.output())
		}
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	codes := map[string]int{}
	for i := range 2 * limit {
		s := sa
		if i%2 == 1 {
			s = sb
		}
		wg.Go(func() {
			<-start
			r, h, err := s.post(token, `{ __typename }`)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Status == http.StatusTooManyRequests && (h.Get("Retry-After") == "" || r.Errors[0].Extensions["retryAfterSeconds"] == nil) {
				t.Errorf("a 429 without Retry-After or retryAfterSeconds: %v %+v", h, r.Errors)
			}
			mu.Lock()
			defer mu.Unlock()
			statuses[r.Status]++
			codes[r.code()]++
		})
	}
	begun := time.Now()
	close(start)
	wg.Wait()
	if took := time.Since(begun); took > 5*time.Second {
		t.Fatalf("the requests took %s, too close to the 10 s window for the count to mean anything", took)
	}
	if statuses[http.StatusOK] != limit || statuses[http.StatusTooManyRequests] != limit || codes[""] != limit || codes["RATE_LIMITED"] != limit {
		t.Errorf("of %d concurrent requests over two processes: statuses %v, codes %v; want exactly %d accepted and %d RATE_LIMITED",
			2*limit, statuses, codes, limit, limit)
	}
}

// TestE2E_RateLimitExecuteAliases: each executeCommand alias costs one of
// the execute budget; the refused ones say when to retry, and the request
// itself is answered.
func TestE2E_RateLimitExecuteAliases(t *testing.T) {
	in := newInstance(t, "RATE_LIMIT_EXECUTE_PER_MINUTE=3", "RDEV_PER_PROJECT_COMMANDS=4")
	token, _ := in.createKey("--name", "runner", "--admin")
	s := in.serve()
	var q strings.Builder
	q.WriteString("mutation {")
	for i := range 5 {
		fmt.Fprintf(&q, ` a%d: executeCommand(input: {projectId: "demo", shell: "true"}) { command { id } }`, i)
	}
	q.WriteString(" }")
	r, h, err := s.post(token, q.String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200: %+v", r.Status, r.Errors)
	}
	// A failed non-null field nulls the data, so count what ran.
	if len(r.Errors) != 2 {
		t.Fatalf("5 aliases on a budget of 3: errors %+v; want 2 RATE_LIMITED", r.Errors)
	}
	list := s.query(token, `{ commands(projectId: "demo", first: 50) { edges { node { id } } } }`, nil)
	if edges, _ := list.Data["commands"].(map[string]any)["edges"].([]any); len(edges) != 3 {
		t.Errorf("5 aliases on a budget of 3: %d commands exist, want 3: %+v", len(edges), list)
	}
	for _, e := range r.Errors {
		if e.Extensions["code"] != "RATE_LIMITED" || e.Extensions["retryAfterSeconds"] == nil {
			t.Errorf("error %+v, want RATE_LIMITED with retryAfterSeconds", e)
		}
	}
	if h.Get("Retry-After") == "" || h.Get("RateLimit-Limit") == "" || h.Get("RateLimit-Remaining") == "" || h.Get("RateLimit-Reset") == "" {
		t.Errorf("headers %v, want Retry-After and RateLimit-*", h)
	}
	// The budget is spent for the minute: one more is refused.
	if r, _, _ := s.post(token, `mutation { executeCommand(input: {projectId: "demo", shell: "true"}) { command { id } } }`); r.code() != "RATE_LIMITED" {
		t.Errorf("a sixth call: %+v, want RATE_LIMITED", r.Errors)
	}
}

// TestE2E_RateLimitWebsocket: operations on an open WebSocket are charged
// one by one; the one over the budget gets a RATE_LIMITED error and the
// connection stays open.
func TestE2E_RateLimitWebsocket(t *testing.T) {
	in := newInstance(t, "RATE_LIMIT_RPS=1", "RATE_LIMIT_BURST=3")
	token, _ := in.createKey("--name", "ws", "--admin")
	s := in.serve()
	dialer := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, res, err := dialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(s.url, "http")+"/graphql", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	_ = res.Body.Close()
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	type message struct {
		ID      string          `json:"id,omitempty"`
		Type    string          `json:"type"`
		Payload json.RawMessage `json:"payload,omitempty"`
	}
	send := func(m message) {
		t.Helper()
		if err := c.WriteJSON(m); err != nil {
			t.Fatal(err)
		}
	}
	read := func() message {
		t.Helper()
		var m message
		if err := c.ReadJSON(&m); err != nil {
			t.Fatalf("read: %v", err)
		}
		return m
	}
	send(message{Type: "connection_init", Payload: json.RawMessage(`{"authorization":"Bearer ` + token + `"}`)})
	if m := read(); m.Type != "connection_ack" {
		t.Fatalf("after connection_init: %+v", m)
	}
	// The upgrade request carried no key, so the budget of 3 is the
	// operations'.
	for i := 1; i <= 4; i++ {
		send(message{ID: fmt.Sprint(i), Type: "subscribe", Payload: json.RawMessage(`{"query":"{ __typename }"}`)})
		m := read()
		if m.Type != "next" || m.ID != fmt.Sprint(i) {
			t.Fatalf("operation %d: %+v", i, m)
		}
		var r response
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			t.Fatal(err)
		}
		switch {
		case i <= 3 && (len(r.Errors) > 0 || r.Data["__typename"] != "Query"):
			t.Errorf("operation %d within the budget: %s", i, m.Payload)
		case i == 4 && (r.code() != "RATE_LIMITED" || r.Errors[0].Extensions["retryAfterSeconds"] == nil):
			t.Errorf("operation 4 over the budget: %s, want RATE_LIMITED with retryAfterSeconds", m.Payload)
		}
		if m := read(); m.Type != "complete" || m.ID != fmt.Sprint(i) {
			t.Fatalf("operation %d: %+v, want complete", i, m)
		}
	}
	send(message{Type: "ping"})
	if m := read(); m.Type != "pong" {
		t.Errorf("after a refused operation: %+v, want pong on the open connection", m)
	}
}
