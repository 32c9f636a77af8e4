package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
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
)

// BenchmarkKubeExecOverhead runs `sh -c 'echo hi'` in a pod two ways in one
// run: directly with client-go's exec (WebSocket, SPDY fallback) against the
// API server, the baseline; and through the rdev binary — executeCommand over
// HTTP, then commandOutput over WebSocket until CommandFinished, which comes
// after the last chunk. Read rdev's ns/op as a ratio of the baseline's. Run
// it with
//
//	go test -run '^$' -bench KubeExecOverhead -benchtime 50x ./cmd/rdev
func BenchmarkKubeExecOverhead(b *testing.B) {
	kc := mustKubeconfig(b)
	ns := kubeProject(b, kc, "kbench", b.TempDir())
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
	run := func(tb testing.TB) {
		r := s.query(token, `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
			map[string]any{"in": map[string]any{"projectId": "kbench", "argv": argv}})
		if len(r.Errors) > 0 {
			tb.Fatalf("execute: %+v", r.Errors)
		}
		id := r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
		if out, status := follow(tb, s.url, token, id); out != "hi\n" || status != "SUCCEEDED" {
			tb.Fatalf("through rdev: %q %s", out, status)
		}
	}
	run(b) // the project is found and exec works

	b.Run("baseline=client-go", func(b *testing.B) {
		for b.Loop() {
			direct(b)
		}
	})
	b.Run("rdev", func(b *testing.B) {
		for b.Loop() {
			run(b)
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

// wsSubscribe opens a graphql-transport-ws connection with token and starts
// the subscription query as operation "1".
func wsSubscribe(tb testing.TB, url, token, query string, vars map[string]any) *gorilla.Conn {
	tb.Helper()
	d := gorilla.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, res, err := d.Dial("ws"+strings.TrimPrefix(url, "http")+"/graphql", nil)
	if err != nil {
		tb.Fatal(err)
	}
	_ = res.Body.Close()
	_ = c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + token}})
	_ = c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}})
	return c
}

// follow subscribes to a command's output over graphql-transport-ws and
// returns its stdout and final status.
func follow(tb testing.TB, url, token, id string) (string, string) {
	tb.Helper()
	c := wsSubscribe(tb, url, token,
		`subscription($id: ID!) { commandOutput(commandId: $id) { ... on OutputChunk { stream data } ... on CommandFinished { status } } }`,
		map[string]any{"id": id})
	defer func() { _ = c.Close() }()
	var out strings.Builder
	status := ""
	for {
		var m struct {
			Type    string `json:"type"`
			Payload struct {
				Data struct {
					CommandOutput struct{ Stream, Data, Status string } `json:"commandOutput"`
				} `json:"data"`
			} `json:"payload"`
		}
		if err := c.ReadJSON(&m); err != nil {
			tb.Fatalf("read: %v", err)
		}
		switch m.Type {
		case "next":
			o := m.Payload.Data.CommandOutput
			if o.Status != "" {
				status = o.Status
			} else if o.Stream == "STDOUT" {
				out.WriteString(o.Data)
			}
		case "complete":
			return out.String(), status
		case "error":
			b, _ := json.Marshal(m)
			tb.Fatalf("subscription error: %s", b)
		}
	}
}
