package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// BenchmarkKubeExecOverhead runs `sh -c 'echo hi'` in a pod in one run, as
// the baseline directly with client-go's exec (WebSocket, SPDY fallback)
// against the API server, and through the rdev binary: executeCommand over
// HTTP, then commandOutput over a graphql-transport-ws connection the client
// keeps open (as Apollo's and urql's WebSocket links do). The rdev
// sub-benchmarks stop the clock at:
//
//   - rdev: the last output chunk received, what a user waits for (the
//     command's end then follows as CommandFinished, off the clock);
//   - rdev-to-finished: CommandFinished received, the status written;
//   - rdev-new-connection: the last chunk, on a WebSocket dialled for each
//     command.
//
// Each command comes 50 ms after the one before (off the clock, for the
// baseline too), as commands from people and agents do: time for rdev to
// have its warm exec streams ready again. The back-to-back sub-benchmarks
// run them without a pause, where each command waits for a stream to open.
//
// Read each ns/op as a ratio of the baseline's. Run it with
//
//	go test -run '^$' -bench KubeExecOverhead -benchtime 100x ./cmd/rdev
func BenchmarkKubeExecOverhead(b *testing.B) {
	kc := mustKubeconfig(b)
	ns := testenv.KubeProject(b, kc, "kbench", b.TempDir())
	rc, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		b.Fatal(err)
	}
	argv := []string{"sh", "-c", "echo hi"}
	direct := func(tb testing.TB) {
		var out bytes.Buffer
		if err := directExec(tb.Context(), rc, ns, "kbench-0", argv, &out); err != nil || out.String() != "hi\n" {
			tb.Fatalf("direct exec: %q, %v", out.String(), err)
		}
	}
	// kwok learns of its Exec object through a watch of its own.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var out bytes.Buffer
		if directExec(b.Context(), rc, ns, "kbench-0", argv, &out) == nil {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("commands never ran in the pod")
		}
	}

	in := newInstance(b, "RDEV_EXECUTOR=kube", "KUBECONFIG="+kc, "RDEV_NAMESPACE="+ns, "LOG_LEVEL=warn")
	s := in.serve()
	token, _ := in.createKey("--name", "bench", "--admin")
	execute := func(tb testing.TB) string {
		r := s.query(token, `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
			map[string]any{"in": map[string]any{"projectId": "kbench", "argv": argv}})
		if len(r.Errors) > 0 {
			tb.Fatalf("execute: %+v", r.Errors)
		}
		return r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	}
	ws := dialGraphQLWS(b, s.url, token)
	// through runs one command and reads its output on c, stopping the
	// clock (if b is given) once "hi\n" arrived, or once it finished.
	through := func(b *testing.B, c *graphqlWS, clockToFinish bool) {
		id := execute(b)
		var out strings.Builder
		status := c.follow(b, id, func(stream, data string) {
			if stream == "STDOUT" {
				out.WriteString(data)
			}
			if !clockToFinish && out.String() == "hi\n" {
				b.StopTimer()
			}
		})
		b.StartTimer()
		if out.String() != "hi\n" || status != "SUCCEEDED" {
			b.Fatalf("through rdev: %q %s", out.String(), status)
		}
	}
	through(b, ws, true) // the project is found and exec works

	paused := func(b *testing.B, run func(*testing.B)) {
		for b.Loop() {
			b.StopTimer()
			time.Sleep(50 * time.Millisecond)
			b.StartTimer()
			run(b)
		}
	}
	b.Run("baseline=client-go", func(b *testing.B) {
		paused(b, func(b *testing.B) { direct(b) })
	})
	b.Run("rdev", func(b *testing.B) {
		paused(b, func(b *testing.B) { through(b, ws, false) })
	})
	b.Run("rdev-to-finished", func(b *testing.B) {
		paused(b, func(b *testing.B) { through(b, ws, true) })
	})
	b.Run("rdev-new-connection", func(b *testing.B) {
		paused(b, func(b *testing.B) {
			c := dialGraphQLWS(b, s.url, token)
			through(b, c, false)
			b.StopTimer()
			c.close()
			b.StartTimer()
		})
	})
	b.Run("back-to-back/baseline=client-go", func(b *testing.B) {
		for b.Loop() {
			direct(b)
		}
	})
	b.Run("back-to-back/rdev", func(b *testing.B) {
		for b.Loop() {
			through(b, ws, false)
		}
	})
}

// directExec runs argv in the first container of pod as client-go's own
// executors do, writing its stdout to out.
func directExec(ctx context.Context, rc *rest.Config, ns, pod string, argv []string, out *bytes.Buffer) error {
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return err
	}
	u := client.CoreV1().RESTClient().Post().Namespace(ns).Resource("pods").Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Command: argv, Stdout: true, Stderr: true}, scheme.ParameterCodec).URL()
	ws, err := remotecommand.NewWebSocketExecutor(rc, http.MethodGet, u.String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(rc, http.MethodPost, u)
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, httpstream.IsUpgradeFailure)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	return ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: out, Stderr: &stderr})
}

// graphqlWS is a graphql-transport-ws connection that runs one operation at a
// time.
type graphqlWS struct {
	c    *gorilla.Conn
	next int
}

// dialGraphQLWS opens and initialises a graphql-transport-ws connection with
// token; it is closed when tb ends.
func dialGraphQLWS(tb testing.TB, url, token string) *graphqlWS {
	tb.Helper()
	d := gorilla.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, res, err := d.Dial("ws"+strings.TrimPrefix(url, "http")+"/graphql", nil)
	if err != nil {
		tb.Fatal(err)
	}
	_ = res.Body.Close()
	g := &graphqlWS{c: c}
	tb.Cleanup(g.close)
	_ = c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + token}})
	var ack struct{ Type string }
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		tb.Fatalf("connection_init: %+v, %v", ack, err)
	}
	return g
}

func (g *graphqlWS) close() { _ = g.c.Close() }

// subscribe starts query as a new operation and returns its id.
func (g *graphqlWS) subscribe(tb testing.TB, query string, vars map[string]any) string {
	tb.Helper()
	g.next++
	id := strconv.Itoa(g.next)
	if err := g.c.WriteJSON(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
		tb.Fatal(err)
	}
	return id
}

// follow subscribes to a command's output, calls chunk for each output chunk
// and returns the command's final status once the operation completes.
func (g *graphqlWS) follow(tb testing.TB, commandID string, chunk func(stream, data string)) string {
	tb.Helper()
	id := g.subscribe(tb,
		`subscription($id: ID!) { commandOutput(commandId: $id) { ... on OutputChunk { stream data } ... on CommandFinished { status } } }`,
		map[string]any{"id": commandID})
	status := ""
	for {
		var m struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Payload struct {
				Data struct {
					CommandOutput struct{ Stream, Data, Status string } `json:"commandOutput"`
				} `json:"data"`
			} `json:"payload"`
		}
		if err := g.c.ReadJSON(&m); err != nil {
			tb.Fatalf("read: %v", err)
		}
		switch {
		case m.Type == "ping":
			_ = g.c.WriteJSON(map[string]any{"type": "pong"})
		case m.ID != id:
		case m.Type == "next":
			if o := m.Payload.Data.CommandOutput; o.Status != "" {
				status = o.Status
			} else {
				chunk(o.Stream, o.Data)
			}
		case m.Type == "complete":
			return status
		case m.Type == "error":
			b, _ := json.Marshal(m)
			tb.Fatalf("subscription error: %s", b)
		}
	}
}
