package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/telemetry"
)

// The client's trace context, as a caller would send it.
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
	clientParent  = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// recordSpans returns tracing whose spans, once ended, are in exp.
func recordSpans(t *testing.T) (*telemetry.Tracing, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return telemetry.NewTracingFor(tp), exp
}

// postTraced posts a GraphQL request body with the client's traceparent and
// accept as the Accept header, if not empty.
func (ts *testServer) postTraced(t *testing.T, body []byte, accept string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ts.token)
	req.Header.Set("traceparent", clientParent)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// spanTree is the spans of one run, by name and by span ID.
type spanTree []tracetest.SpanStub

// named returns the spans called name.
func (st spanTree) named(name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range st {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

// one returns the only span called name, failing the test otherwise.
func (st spanTree) one(t *testing.T, name string) tracetest.SpanStub {
	t.Helper()
	got := st.named(name)
	if len(got) != 1 {
		t.Fatalf("%d spans named %q, want 1; spans: %v", len(got), name, st.names())
	}
	return got[0]
}

// inTrace returns the spans of the trace with the ID traceID (hex).
func inTrace(spans []tracetest.SpanStub, traceID string) spanTree {
	var out spanTree
	for _, s := range spans {
		if s.SpanContext.TraceID().String() == traceID {
			out = append(out, s)
		}
	}
	return out
}

func (st spanTree) names() []string {
	out := make([]string, len(st))
	for i, s := range st {
		out[i] = s.Name + " (parent " + s.Parent.SpanID().String() + ")"
	}
	return out
}

func attr(s tracetest.SpanStub, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// childOf fails the test unless child's parent is parent.
func childOf(t *testing.T, child, parent tracetest.SpanStub) {
	t.Helper()
	if child.Parent.SpanID() != parent.SpanContext.SpanID() || child.SpanContext.TraceID() != parent.SpanContext.TraceID() {
		t.Errorf("span %q has parent %s in trace %s, want %q (%s in trace %s)", child.Name,
			child.Parent.SpanID(), child.SpanContext.TraceID(), parent.Name, parent.SpanContext.SpanID(), parent.SpanContext.TraceID())
	}
}

// TestServer_Trace is the trace of one executeCommand sent with a client's
// traceparent: the HTTP request's span in the client's trace, the GraphQL
// operation below it, the executeCommand resolver below that and the bun
// queries below the resolver; the command's span, from queued to finished,
// a child of the resolver (through the stored trace context), with the exec
// below it; and the webhook deliveries in the same trace, the receiver given
// a traceparent naming the delivery's span.
func TestServer_Trace(t *testing.T) {
	tracing, exp := recordSpans(t)
	ts := startTracedTestServer(t, webhookTestEnv, tracing)
	rcv := newReceiver(t)
	_, secret := ts.createWebhook(t, rcv.URL+"/hook", "command.queued", "command.finished")
	rcv.setSecret(t, secret)

	const marker = "Zq7TraceMarker"
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation Run($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
		"variables": map[string]any{"in": map[string]any{"projectId": "demo", "argv": []string{"sh", "-c", "echo " + marker}}},
	})
	res := ts.postTraced(t, body, "")
	var out struct {
		Data struct {
			ExecuteCommand struct{ Command struct{ ID string } }
		}
		Errors []any
	}
	err := json.NewDecoder(res.Body).Decode(&out)
	_ = res.Body.Close()
	if err != nil || len(out.Errors) > 0 {
		t.Fatalf("executeCommand: %v %v", err, out.Errors)
	}
	id := out.Data.ExecuteCommand.Command.ID
	msgs := rcv.waitFor(t, 2)

	// The command's span ends once its end is stored; the finished message
	// may come first.
	var spans spanTree
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		spans = inTrace(exp.GetSpans(), clientTraceID)
		if len(spans.named("command EXEC")) > 0 && len(spans.named("webhook.deliver")) >= 2 || time.Now().After(deadline) {
			break
		}
	}

	httpSpan := spans.one(t, "POST /graphql")
	if httpSpan.Parent.SpanID().String() != clientSpanID || !httpSpan.Parent.IsRemote() || httpSpan.SpanKind != trace.SpanKindServer {
		t.Errorf("HTTP span: parent %s (remote %v), kind %v; want the client's span %s", httpSpan.Parent.SpanID(), httpSpan.Parent.IsRemote(), httpSpan.SpanKind, clientSpanID)
	}
	if v, _ := attr(httpSpan, "http.response.status_code"); v.AsInt64() != http.StatusOK {
		t.Errorf("HTTP span status code %v", v.String())
	}
	op := spans.one(t, "graphql.operation Run")
	childOf(t, op, httpSpan)
	if v, _ := attr(op, "graphql.operation.type"); v.AsString() != "mutation" {
		t.Errorf("operation type %q", v.String())
	}
	resolver := spans.one(t, "graphql.resolve Mutation.executeCommand")
	childOf(t, resolver, op)
	if got := spans.named("graphql.resolve ExecuteCommandPayload.command"); len(got) != 0 {
		t.Errorf("a field without a resolver of its own has a span: %v", got[0].Name)
	}

	insert := spans.one(t, "INSERT commands")
	childOf(t, insert, resolver)
	text, _ := attr(insert, "db.query.text")
	if !strings.Contains(text.AsString(), "INSERT INTO") || strings.Contains(text.AsString(), marker) || strings.Contains(text.AsString(), id) {
		t.Errorf("db.query.text %q: want the statement without its values", text.AsString())
	}
	if v, _ := attr(insert, "db.system.name"); v.AsString() != "sqlite" {
		t.Errorf("db.system.name %q", v.String())
	}
	var underResolver int
	for _, s := range spans {
		if s.Parent.SpanID() == resolver.SpanContext.SpanID() && s.SpanKind == trace.SpanKindClient {
			underResolver++
		}
	}
	if underResolver < 2 {
		t.Errorf("%d query spans below the resolver, want the project check and the insert at least", underResolver)
	}

	cmdSpan := spans.one(t, "command EXEC")
	childOf(t, cmdSpan, resolver)
	c, err := ts.store.FindCommandByID(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !cmdSpan.StartTime.Equal(c.CreatedAt) || c.FinishedAt == nil || !cmdSpan.EndTime.Equal(*c.FinishedAt) {
		t.Errorf("command span runs %v to %v, want queued %v to finished %v", cmdSpan.StartTime, cmdSpan.EndTime, c.CreatedAt, c.FinishedAt)
	}
	for key, want := range map[attribute.Key]string{
		"rdev.command.id": id, "rdev.project.id": "demo", "rdev.command.type": "EXEC",
		"rdev.command.priority": "NORMAL", "rdev.command.status": string(domain.CommandSucceeded),
	} {
		if v, _ := attr(cmdSpan, key); v.AsString() != want {
			t.Errorf("command span %s = %q, want %q", key, v.String(), want)
		}
	}
	if v, ok := attr(cmdSpan, "process.exit.code"); !ok || v.AsInt64() != 0 {
		t.Errorf("command span exit code %v (set %v), want 0", v.String(), ok)
	}
	if len(cmdSpan.Events) != 1 || cmdSpan.Events[0].Name != "started" || c.StartedAt == nil || !cmdSpan.Events[0].Time.Equal(*c.StartedAt) {
		t.Errorf("command span events %+v, want started at %v", cmdSpan.Events, c.StartedAt)
	}
	execSpan := spans.one(t, "exec")
	childOf(t, execSpan, cmdSpan)
	if v, _ := attr(execSpan, "process.executable.name"); v.AsString() != "sh" {
		t.Errorf("exec span program %q", v.String())
	}
	for _, kv := range execSpan.Attributes {
		if strings.Contains(kv.Value.String(), marker) {
			t.Errorf("exec span attribute %s holds the command's arguments", kv.Key)
		}
	}

	deliveries := map[string]tracetest.SpanStub{}
	for _, s := range spans.named("webhook.deliver") {
		deliveries[s.SpanContext.SpanID().String()] = s
	}
	for _, m := range msgs {
		parts := strings.Split(m.TraceParent, "-")
		if len(parts) != 4 || parts[1] != clientTraceID {
			t.Errorf("%s arrived with traceparent %q, want one in trace %s", m.Type, m.TraceParent, clientTraceID)
			continue
		}
		d, ok := deliveries[parts[2]]
		if !ok {
			t.Errorf("%s's traceparent names span %s, not a delivery span", m.Type, parts[2])
			continue
		}
		switch m.Type {
		case domain.EventCommandQueued:
			childOf(t, d, resolver) // queued in the request's transaction
		case domain.EventCommandFinished:
			childOf(t, d, cmdSpan) // queued in the transaction that ended it
		}
	}
}
