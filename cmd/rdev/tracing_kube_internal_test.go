package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// What a traced kube command is given, which no span may hold: an argument
// (in the pods/exec URL's query) and an environment variable's value.
const (
	kubeArgvMarker = "Zq7KubeArgv"
	kubeEnvMarker  = "Zq7KubeEnvSecret"
)

// TestServer_TraceKube is the trace of a command run with RDEV_EXECUTOR=kube
// against the test cluster: the exec span below the command's span, named
// by the program only, and the Kubernetes API calls as spans in the same
// trace, named by their method, with the path but never the query (it holds
// the command's argv). With RDEV_KUBE_WARM_IDLE=0 every command opens its
// own exec, so its pods/exec call is below its exec span; with warm streams
// a command runs over a stream opened before it, outside any trace, so its
// trace has the exec span and no pods/exec call.
func TestServer_TraceKube(t *testing.T) {
	kc, _ := testenv.KubeCluster(t)
	ns := testenv.KubeProject(t, kc, "ktrace", t.TempDir())
	env := map[string]string{"RDEV_EXECUTOR": "kube", "KUBECONFIG": kc, "RDEV_NAMESPACE": ns}

	t.Run("ExecPerCommand", func(t *testing.T) {
		env["RDEV_KUBE_WARM_IDLE"] = "0"
		kt := startKubeTraced(t, env)
		spans, cmdSpan := kt.run(t)
		execSpan := checkExecSpan(t, spans, cmdSpan)
		calls := spans.kubeExecCalls()
		if len(calls) == 0 {
			t.Fatalf("no pods/exec call in the command's trace; spans: %v", spans.names())
		}
		for _, c := range calls {
			childOf(t, c, execSpan)
			if c.SpanKind != trace.SpanKindClient {
				t.Errorf("%s: kind %v, want client", c.Name, c.SpanKind)
			}
			if v, _ := attr(c, "server.address"); v.AsString() == "" {
				t.Errorf("%s has no server.address", c.Name)
			}
		}
		// The last call is the one that ran the command (a WebSocket
		// refused would be followed by SPDY's POST).
		last := calls[len(calls)-1]
		if v, _ := attr(last, "http.response.status_code"); v.AsInt64() != 101 {
			t.Errorf("the pods/exec call answered %v, want 101 Switching Protocols", v.String())
		}
		noSecrets(t, kt.exp.GetSpans())
	})

	t.Run("WarmStreams", func(t *testing.T) {
		env["RDEV_KUBE_WARM_IDLE"] = "30s"
		kt := startKubeTraced(t, env)
		// kt's warm-up ran a command, which left warm streams open.
		spans, cmdSpan := kt.run(t)
		checkExecSpan(t, spans, cmdSpan)
		if calls := spans.kubeExecCalls(); len(calls) > 0 {
			t.Errorf("the command's trace has %d pods/exec calls, want none: it ran over a warm stream opened outside any trace; spans: %v",
				len(calls), spans.names())
		}
		noSecrets(t, kt.exp.GetSpans())
	})
}

// kubeTraced is a test server with the kube executor and an in-memory span
// exporter.
type kubeTraced struct {
	*testServer
	exp *tracetest.InMemoryExporter
}

// startKubeTraced starts the server and waits until commands run in the
// project's pod: the project cache has synced, and kwok has learnt of its
// Exec object (through a watch of its own, maybe after the pod became ready).
func startKubeTraced(t *testing.T, env map[string]string) *kubeTraced {
	t.Helper()
	tracing, exp := recordSpans(t)
	kt := &kubeTraced{testServer: startTracedTestServer(t, env, tracing), exp: exp}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		id, ok := kt.tryExecute(t, map[string]any{"projectId": "ktrace", "argv": []string{"true"}})
		if ok && kt.wait(t, id).Status == domain.CommandSucceeded {
			return kt
		}
		if time.Now().After(deadline) {
			t.Fatal("commands never ran in the pod")
		}
	}
}

// tryExecute queues a command and returns its ID; false if it was refused
// (the project is not known yet).
func (kt *kubeTraced) tryExecute(t *testing.T, input map[string]any) (string, bool) {
	t.Helper()
	var out struct {
		ExecuteCommand struct{ Command struct{ ID string } }
	}
	errs := kt.gql(t, kt.token, "trace-kube", `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
		map[string]any{"in": input}, &out)
	return out.ExecuteCommand.Command.ID, len(errs) == 0
}

// wait returns the command once it has finished.
func (kt *kubeTraced) wait(t *testing.T, id string) *domain.Command {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := kt.store.FindCommandByID(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if c.FinishedAt != nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s still %s", id, c.Status)
		}
	}
}

// run runs a command given the markers as an argument and an environment
// variable, and returns the spans of its trace and its command span.
func (kt *kubeTraced) run(t *testing.T) (spanTree, tracetest.SpanStub) {
	t.Helper()
	id, ok := kt.tryExecute(t, map[string]any{
		"projectId": "ktrace", "argv": []string{"sh", "-c", "test -n \"$TRACE_SECRET\" && echo " + kubeArgvMarker},
		"env": []map[string]string{{"name": "TRACE_SECRET", "value": kubeEnvMarker}},
	})
	if !ok {
		t.Fatal("executeCommand refused the command")
	}
	if c := kt.wait(t, id); c.Status != domain.CommandSucceeded {
		t.Fatalf("command %s, want SUCCEEDED", c.Status)
	}
	// The command's span ends once its end is stored.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		all := spanTree(kt.exp.GetSpans())
		for _, s := range all.named("command EXEC") {
			if v, _ := attr(s, "rdev.command.id"); v.AsString() == id {
				return inTrace(all, s.SpanContext.TraceID().String()), s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no span for command %s; spans: %v", id, all.names())
		}
	}
}

// kubeExecCalls returns the spans of pods/exec calls, in the order they
// started.
func (st spanTree) kubeExecCalls() []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range st {
		if p, _ := attr(s, "url.path"); strings.HasPrefix(s.Name, "kube ") && strings.HasSuffix(p.AsString(), "/pods/ktrace-0/exec") {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b tracetest.SpanStub) int { return a.StartTime.Compare(b.StartTime) })
	return out
}

// checkExecSpan checks that the trace has one exec span, below the command's
// and naming the program only, and returns it.
func checkExecSpan(t *testing.T, spans spanTree, cmdSpan tracetest.SpanStub) tracetest.SpanStub {
	t.Helper()
	execSpan := spans.one(t, "exec")
	childOf(t, execSpan, cmdSpan)
	if v, _ := attr(execSpan, "process.executable.name"); v.AsString() != "sh" {
		t.Errorf("exec span program %q, want sh", v.String())
	}
	if v, ok := attr(execSpan, "process.exit.code"); !ok || v.AsInt64() != 0 {
		t.Errorf("exec span exit code %v (set %v), want 0", v.String(), ok)
	}
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "kube ") {
			m, _ := attr(s, "http.request.method")
			if p, _ := attr(s, "url.path"); s.Name != "kube "+m.AsString() || !strings.HasPrefix(p.AsString(), "/api") || strings.Contains(p.AsString(), "?") {
				t.Errorf("API call span %q, method %q, path %q: want \"kube METHOD\" and the path alone", s.Name, m.String(), p.String())
			}
		}
	}
	t.Logf("spans of the command's trace: %v", spans.names())
	return execSpan
}

// noSecrets fails the test if a span holds the command's argument or its
// environment variable's value: in its name, an attribute, an event or its
// status.
func noSecrets(t *testing.T, spans []tracetest.SpanStub) {
	t.Helper()
	holds := func(s string) bool { return strings.Contains(s, kubeArgvMarker) || strings.Contains(s, kubeEnvMarker) }
	holdsAny := func(kvs []attribute.KeyValue) (attribute.Key, bool) {
		for _, kv := range kvs {
			if holds(kv.Value.String()) {
				return kv.Key, true
			}
		}
		return "", false
	}
	for _, s := range spans {
		if holds(s.Name) || holds(s.Status.Description) {
			t.Errorf("span %q (status %q) holds the command's argv or env", s.Name, s.Status.Description)
		}
		if k, ok := holdsAny(s.Attributes); ok {
			t.Errorf("span %q: attribute %s holds the command's argv or env", s.Name, k)
		}
		for _, e := range s.Events {
			if k, ok := holdsAny(e.Attributes); ok || holds(e.Name) {
				t.Errorf("span %q: event %q (attribute %s) holds the command's argv or env", s.Name, e.Name, k)
			}
		}
	}
}
