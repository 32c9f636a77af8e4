package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

const watchSubscription = `subscription Watch { projectStatus(projectId: "demo") { id status } }`

// TestServer_TraceSubscriptions is the trace of subscriptions: a
// graphql-transport-ws connection is one server span, "GET /graphql", for
// as long as it lasts, in the trace of the client's traceparent; each
// subscription on it is an operation span below it, ended by the client's
// complete while the connection stays open. An SSE stream is the same with
// "POST /graphql".
func TestServer_TraceSubscriptions(t *testing.T) {
	tracing, exp := recordSpans(t)
	ts := startTracedTestServer(t, nil, tracing)
	// ended returns the spans of the client's trace ended so far.
	ended := func() spanTree { return inTrace(exp.GetSpans(), clientTraceID) }

	t.Run("WebSocket", func(t *testing.T) {
		exp.Reset()
		d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
		c, res, err := d.DialContext(t.Context(), "ws"+ts.url[len("http"):]+"/graphql", http.Header{"Traceparent": {clientParent}})
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		defer func() { _ = c.Close() }()
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		send := func(m map[string]any) {
			t.Helper()
			if err := c.WriteJSON(m); err != nil {
				t.Fatal(err)
			}
		}
		read := func(want string) {
			t.Helper()
			for {
				var m struct{ Type string }
				if err := c.ReadJSON(&m); err != nil {
					t.Fatalf("waiting for %s: %v", want, err)
				}
				if m.Type == want {
					return
				}
				if m.Type == "error" || m.Type == "complete" {
					t.Fatalf("got %s, waiting for %s", m.Type, want)
				}
			}
		}
		send(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + ts.token}})
		read("connection_ack")
		for _, id := range []string{"1", "2"} {
			send(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": watchSubscription}})
			read("next")
			send(map[string]any{"id": id, "type": "complete"})
		}
		// Completed, the operations' spans end; the connection's has not.
		if !waitFor(10*time.Second, func() bool { return len(ended().named("graphql.operation Watch")) == 2 }) {
			t.Fatalf("the completed subscriptions' spans did not end; spans: %v", ended().names())
		}
		if got := ended().named("GET /graphql"); len(got) != 0 {
			t.Fatalf("the connection's span ended while the connection is open")
		}
		_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		_ = c.Close()
		if !waitFor(10*time.Second, func() bool { return len(ended().named("GET /graphql")) == 1 }) {
			t.Fatalf("the connection's span did not end when it closed; spans: %v", ended().names())
		}

		spans := ended()
		conn := spans.one(t, "GET /graphql")
		if conn.Parent.SpanID().String() != clientSpanID || !conn.Parent.IsRemote() || conn.SpanKind != trace.SpanKindServer {
			t.Errorf("connection span: parent %s (remote %v), kind %v; want the client's span %s", conn.Parent.SpanID(), conn.Parent.IsRemote(), conn.SpanKind, clientSpanID)
		}
		if v, _ := attr(conn, "http.response.status_code"); v.AsInt64() != http.StatusSwitchingProtocols {
			t.Errorf("connection span status code %v, want 101", v.String())
		}
		if v, _ := attr(conn, "http.route"); v.AsString() != "/graphql" {
			t.Errorf("connection span route %q", v.String())
		}
		ops := spans.named("graphql.operation Watch")
		if ops[0].SpanContext.SpanID() == ops[1].SpanContext.SpanID() {
			t.Error("two subscriptions share a span")
		}
		for _, op := range ops {
			checkSubscriptionSpans(t, spans, op, conn)
			if op.EndTime.After(conn.EndTime) {
				t.Errorf("operation span ended at %v, after its connection's (%v)", op.EndTime, conn.EndTime)
			}
		}
	})

	t.Run("SSE", func(t *testing.T) {
		exp.Reset()
		body, _ := json.Marshal(map[string]any{"query": watchSubscription})
		res := ts.postTraced(t, body, "text/event-stream")
		sc := bufio.NewScanner(res.Body)
		next := false
		for !next && sc.Scan() {
			next = strings.HasPrefix(sc.Text(), "event: next")
		}
		if !next {
			t.Fatalf("the stream ended without an event (%v)", sc.Err())
		}
		_ = res.Body.Close()
		if !waitFor(10*time.Second, func() bool { return len(ended().named("POST /graphql")) == 1 }) {
			t.Fatalf("the stream's span did not end when it closed; spans: %v", ended().names())
		}
		spans := ended()
		stream := spans.one(t, "POST /graphql")
		if stream.Parent.SpanID().String() != clientSpanID {
			t.Errorf("stream span: parent %s, want the client's span %s", stream.Parent.SpanID(), clientSpanID)
		}
		checkSubscriptionSpans(t, spans, spans.one(t, "graphql.operation Watch"), stream)
	})
}

// checkSubscriptionSpans checks that op is a subscription's span below its
// connection's, with its resolver's span below it.
func checkSubscriptionSpans(t *testing.T, spans spanTree, op, conn tracetest.SpanStub) {
	t.Helper()
	childOf(t, op, conn)
	if v, _ := attr(op, "graphql.operation.type"); v.AsString() != "subscription" {
		t.Errorf("operation type %q", v.String())
	}
	if v, _ := attr(op, "graphql.operation.name"); v.AsString() != "Watch" {
		t.Errorf("operation name %q", v.String())
	}
	var resolvers int
	for _, r := range spans.named("graphql.resolve Subscription.projectStatus") {
		if r.Parent.SpanID() == op.SpanContext.SpanID() {
			resolvers++
		}
	}
	if resolvers != 1 {
		t.Errorf("%d resolver spans below operation %s, want 1; spans: %v", resolvers, op.SpanContext.SpanID(), spans.names())
	}
}
