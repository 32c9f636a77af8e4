package main_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace endpoint that keeps what it is sent.
type otlpReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
	spans    []*tracepb.Span
	services []string
	errs     []error
}

func newOTLPReceiver(t *testing.T, ln net.Listener) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var msg coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &msg)
		}
		if err == nil && (req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf") {
			err = errors.New("export to " + req.URL.Path + " as " + req.Header.Get("Content-Type"))
		}
		r.mu.Lock()
		r.requests++
		if err != nil {
			r.errs = append(r.errs, err)
		}
		for _, rs := range msg.GetResourceSpans() {
			for _, a := range rs.GetResource().GetAttributes() {
				if a.GetKey() == "service.name" {
					r.services = append(r.services, a.GetValue().GetStringValue())
				}
			}
			for _, ss := range rs.GetScopeSpans() {
				r.spans = append(r.spans, ss.GetSpans()...)
			}
		}
		r.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	if ln != nil {
		_ = r.Listener.Close()
		r.Listener = ln
	}
	r.Start()
	t.Cleanup(r.Close)
	return r
}

// spansOf returns the spans received in trace traceID, by name.
func (r *otlpReceiver) spansOf(traceID string) map[string]*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]*tracepb.Span{}
	for _, s := range r.spans {
		if hexID(s.GetTraceId()) == traceID {
			out[s.GetName()] = s
		}
	}
	return out
}

func hexID(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

const e2eTraceID = "0af7651916cd43dd8448eb211c80319c"

// runTracedCommand runs one command through s with a client traceparent.
func runTracedCommand(t *testing.T, s *server, token string) {
	t.Helper()
	h := http.Header{"Traceparent": {"00-" + e2eTraceID + "-b7ad6b7169203331-01"}}
	r := s.queryWith(token, `mutation { executeCommand(input: {projectId: "demo", argv: ["true"]}) { command { id } } }`, nil, h)
	if len(r.Errors) > 0 {
		t.Fatalf("executeCommand: %+v", r.Errors)
	}
	id, _ := r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := s.query(token, `query($id: ID!) { command(id: $id) { status } }`, map[string]any{"id": id})
		if st, _ := r.Data["command"].(map[string]any)["status"].(string); st == "SUCCEEDED" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s did not succeed: %+v", id, r)
		}
	}
}

// TestE2E_Tracing points the real binary at an OTLP/HTTP receiver: one
// command's spans arrive there, in the client's trace, named by the service
// name from the environment. The batch interval is a minute, so they arrive
// only because SIGTERM flushes them.
func TestE2E_Tracing(t *testing.T) {
	rcv := newOTLPReceiver(t, nil)
	in := newInstance(t, "OTEL_EXPORTER_OTLP_ENDPOINT="+rcv.URL, "OTEL_BSP_SCHEDULE_DELAY=60000", "OTEL_SERVICE_NAME=rdev-e2e")
	s := in.serve()
	token, _ := in.createKey("--name", "tracing", "--admin")
	runTracedCommand(t, s, token)
	s.stop()

	want := []string{"POST /graphql", "graphql.operation mutation", "graphql.resolve Mutation.executeCommand", "INSERT commands", "command EXEC", "exec"}
	got := rcv.spansOf(e2eTraceID)
	for _, name := range want {
		if got[name] == nil {
			t.Errorf("no span %q in the client's trace; got %d spans", name, len(got))
		}
	}
	if c, x := got["command EXEC"], got["exec"]; c != nil && x != nil && hexID(x.GetParentSpanId()) != hexID(c.GetSpanId()) {
		t.Errorf("the exec span's parent is %x, not the command's span %x", x.GetParentSpanId(), c.GetSpanId())
	}
	if h := got["POST /graphql"]; h != nil && hexID(h.GetParentSpanId()) != "b7ad6b7169203331" {
		t.Errorf("the HTTP span's parent is %x, not the client's span", h.GetParentSpanId())
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if len(rcv.errs) > 0 {
		t.Errorf("bad exports: %v", rcv.errs)
	}
	for _, svc := range rcv.services {
		if svc != "rdev-e2e" {
			t.Errorf("service.name %q, want OTEL_SERVICE_NAME's", svc)
		}
	}
}

// TestE2E_TracingOff: without an endpoint nothing is exported, not even to
// the OTLP default (127.0.0.1:4318, watched when it is free), and
// OTEL_SDK_DISABLED=true silences a configured endpoint.
func TestE2E_TracingOff(t *testing.T) {
	configured := newOTLPReceiver(t, nil)
	var def *otlpReceiver
	if ln, err := net.Listen("tcp", "127.0.0.1:4318"); err == nil {
		def = newOTLPReceiver(t, ln)
	} else {
		t.Logf("the OTLP default port is taken (%v): only the configured endpoint is watched", err)
	}
	for _, env := range [][]string{
		{"OTEL_BSP_SCHEDULE_DELAY=50"},
		{"OTEL_BSP_SCHEDULE_DELAY=50", "OTEL_EXPORTER_OTLP_ENDPOINT=" + configured.URL, "OTEL_SDK_DISABLED=true"},
	} {
		in := newInstance(t, env...)
		s := in.serve()
		token, _ := in.createKey("--name", "tracing", "--admin")
		runTracedCommand(t, s, token)
		s.stop() // which would flush what was buffered
	}
	for _, r := range []*otlpReceiver{configured, def} {
		if r == nil {
			continue
		}
		r.mu.Lock()
		if r.requests > 0 {
			t.Errorf("%s was sent %d exports with tracing off", r.URL, r.requests)
		}
		r.mu.Unlock()
	}
}
