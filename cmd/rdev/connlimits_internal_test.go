package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rdev-hq/rdev/domain"
)

const statusQuery = "subscription { projectStatus { id status } }"

// TestServe_SocketsPerKey: a key holds at most RDEV_MAX_SOCKETS_PER_KEY
// WebSockets, counted by the key presented in connection_init; one more is
// closed with 4429; a connection without a key counts against its address;
// a place is freed when a socket ends, even abnormally.
func TestServe_SocketsPerKey(t *testing.T) {
	ts := startTestServer(t, map[string]string{"RDEV_MAX_SOCKETS_PER_KEY": "2"})
	other := ts.newKey(t)
	open := func(token string) *websocket.Conn {
		t.Helper()
		c, err := ts.openSocket(t.Context(), token)
		if err != nil {
			t.Fatalf("socket within the cap refused: %v", err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	refused := func(token, whose string) {
		t.Helper()
		c, err := ts.openSocket(t.Context(), token)
		if c != nil {
			_ = c.Close()
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != 4429 || !strings.HasPrefix(ce.Text, "Too Many Requests: too many open websocket connections for "+whose) {
			t.Fatalf("socket over the cap: got %v, want close 4429 Too Many Requests … %s", err, whose)
		}
	}

	first := open(ts.token)
	open(ts.token)
	refused(ts.token, "this API key")
	// Another key, and callers without one, have their own counts.
	open(other)
	open("")
	open("")
	refused("", "this address")

	// The peer vanishes without a close frame: its place comes back.
	_ = first.NetConn().Close()
	var c *websocket.Conn
	if !waitFor(10*time.Second, func() bool {
		var err error
		c, err = ts.openSocket(t.Context(), ts.token)
		return err == nil
	}) {
		t.Fatal("the place of a closed socket was never freed")
	}
	defer func() { _ = c.Close() }()
	refused(ts.token, "this API key")
}

// TestServe_StreamsPerKey: a key holds at most RDEV_MAX_STREAMS_PER_KEY SSE
// streams; one more is refused with 429 and RATE_LIMITED; a place is freed
// when a stream ends.
func TestServe_StreamsPerKey(t *testing.T) {
	ts := startTestServer(t, map[string]string{"RDEV_MAX_STREAMS_PER_KEY": "2"})
	// tryOpen opens a stream that lasts until ctx ends and reports whether
	// it was accepted; one refused must be over the cap (429, RATE_LIMITED).
	tryOpen := func(ctx context.Context, token string) bool {
		t.Helper()
		res, err := ts.openSSE(ctx, token, statusQuery)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == http.StatusOK {
			context.AfterFunc(ctx, func() { _ = res.Body.Close() })
			return true
		}
		defer func() { _ = res.Body.Close() }()
		var body struct {
			Errors []struct{ Extensions map[string]any }
		}
		_ = json.NewDecoder(res.Body).Decode(&body)
		if res.StatusCode != http.StatusTooManyRequests || len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != domain.ERATELIMITED {
			t.Fatalf("got %d %+v, want 200, or 429 with code %s", res.StatusCode, body.Errors, domain.ERATELIMITED)
		}
		return false
	}
	ctx := t.Context()
	firstCtx, closeFirst := context.WithCancel(ctx)
	defer closeFirst()
	if !tryOpen(firstCtx, ts.token) || !tryOpen(ctx, ts.token) {
		t.Fatal("stream within the cap refused")
	}
	if tryOpen(ctx, ts.token) {
		t.Fatal("third stream accepted over the cap of 2")
	}
	if !tryOpen(ctx, "") {
		t.Fatal("a caller without a key, which counts against its address, refused")
	}

	closeFirst()
	if !waitFor(10*time.Second, func() bool { return tryOpen(ctx, ts.token) }) {
		t.Fatal("the place of a closed stream was never freed")
	}
	if tryOpen(ctx, ts.token) {
		t.Fatal("stream accepted over the cap after a place was freed and taken")
	}
}

// newKey creates another admin key and returns its token.
func (ts *testServer) newKey(t *testing.T) string {
	t.Helper()
	_, token, err := ts.keys.Create(domain.NewOperatorContext(t.Context()), domain.CreateAPIKey{Name: "other", Scopes: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// TestServe_SubscriptionsPerKey: subscriptions are not charged to the
// request budget (a key whose burst is 3 opens 8 on one socket), but one key
// holds at most RDEV_MAX_SUBSCRIPTIONS_PER_KEY at once, over all its
// sockets; one more is refused with an "error" message (not a "next") coded
// RATE_LIMITED, the others run on, and a place is freed when one ends.
func TestServe_SubscriptionsPerKey(t *testing.T) {
	ts := startTestServer(t, map[string]string{
		"RATE_LIMIT_RPS": "1", "RATE_LIMIT_BURST": "3", "RDEV_MAX_SUBSCRIPTIONS_PER_KEY": "8",
	})
	open := func() *websocket.Conn {
		t.Helper()
		c, err := ts.openSocket(t.Context(), ts.token)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	subscribe := func(c *websocket.Conn, id string) {
		t.Helper()
		if err := c.WriteJSON(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": statusQuery}}); err != nil {
			t.Fatal(err)
		}
	}
	// refusal reads c's messages until one for id that is not a "next"
	// and returns its type and code; a running subscription sends nothing
	// but "next".
	refusal := func(c *websocket.Conn, id string) (typ, code string) {
		t.Helper()
		for {
			var m struct {
				ID, Type string
				Payload  json.RawMessage
			}
			if err := c.ReadJSON(&m); err != nil {
				t.Fatalf("waiting for a refusal of %s: %v", id, err)
			}
			if m.ID != id || m.Type == "next" {
				continue
			}
			var errs []struct{ Extensions map[string]any }
			_ = json.Unmarshal(m.Payload, &errs)
			if len(errs) > 0 {
				code, _ = errs[0].Extensions["code"].(string)
			}
			return m.Type, code
		}
	}

	first, second := open(), open()
	for i := range 5 {
		subscribe(first, fmt.Sprint("a", i))
	}
	for i := range 3 {
		subscribe(second, fmt.Sprint("b", i))
	}
	// All eight run: wait until the server counts them.
	if !waitFor(10*time.Second, func() bool { return ts.conns.Count(domain.ConnSubscription) == 8 }) {
		t.Fatalf("%d subscriptions running, want 8 (none charged to the burst of 3)", ts.conns.Count(domain.ConnSubscription))
	}
	subscribe(second, "over")
	if typ, code := refusal(second, "over"); typ != "error" || code != domain.ERATELIMITED {
		t.Fatalf("subscription over the cap: got %q %q, want an error message coded %s", typ, code, domain.ERATELIMITED)
	}
	// Another key has a count of its own.
	other := ts.newKey(t)
	oc, err := ts.openSocket(t.Context(), other)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = oc.Close() }()
	subscribe(oc, "x")
	if !waitFor(10*time.Second, func() bool { return ts.conns.Count(domain.ConnSubscription) == 9 }) {
		t.Fatal("another key's subscription was not counted apart")
	}

	// One ends: its place comes back.
	if err := first.WriteJSON(map[string]any{"id": "a0", "type": "complete"}); err != nil {
		t.Fatal(err)
	}
	if !waitFor(10*time.Second, func() bool { return ts.conns.Count(domain.ConnSubscription) == 8 }) {
		t.Fatal("the place of a completed subscription was never freed")
	}
	subscribe(second, "again")
	if !waitFor(10*time.Second, func() bool { return ts.conns.Count(domain.ConnSubscription) == 9 }) {
		t.Fatal("a subscription within the cap after a place was freed did not run")
	}

	// SSE subscriptions count under the same cap; over it, the stream is
	// refused before it starts: 429, RATE_LIMITED.
	res, err := ts.openSSE(t.Context(), ts.token, statusQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var body struct {
		Errors []struct{ Extensions map[string]any }
	}
	_ = json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != http.StatusTooManyRequests || len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != domain.ERATELIMITED {
		t.Fatalf("SSE subscription over the cap: %d %+v, want 429 %s", res.StatusCode, body.Errors, domain.ERATELIMITED)
	}
	sse, err := ts.openSSE(t.Context(), other, statusQuery)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sse.Body.Close() }()
	if sse.StatusCode != http.StatusOK || !waitFor(10*time.Second, func() bool { return ts.conns.Count(domain.ConnSubscription) == 10 }) {
		t.Fatalf("an SSE subscription within the cap: status %d, %d subscriptions counted, want 10", sse.StatusCode, ts.conns.Count(domain.ConnSubscription))
	}
}
