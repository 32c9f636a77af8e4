package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/telemetry"
)

// testServer runs `rdev serve` in this process on a loopback port with
// embedded defaults in a temporary directory, so tests can look inside it.
type testServer struct {
	*server
	url   string
	token string
}

func startTestServer(tb testing.TB, env map[string]string) *testServer {
	tb.Helper()
	return startTracedTestServer(tb, env, telemetry.NewTracingFor(noop.NewTracerProvider()))
}

// startTracedTestServer is startTestServer with spans from tracing.
func startTracedTestServer(tb testing.TB, env map[string]string, tracing *telemetry.Tracing) *testServer {
	tb.Helper()
	dir := tb.TempDir()
	vars := map[string]string{
		"RDEV_DATA_DIR": filepath.Join(dir, "data"), "RDEV_WORKSPACE": filepath.Join(dir, "workspace"),
		"RDEV_HOST": "127.0.0.1", "PORT": "0", "RDEV_EXECUTOR": "local", "LOG_LEVEL": "error", "RDEV_SHUTDOWN_TIMEOUT": "1s",
		// As in the end-to-end instances: rate limits only where a test sets them.
		"RATE_LIMIT_RPS": "100000", "RATE_LIMIT_BURST": "100000", "RATE_LIMIT_EXECUTE_PER_MINUTE": "100000",
		"RATE_LIMIT_AUTH_FAILURES_PER_MINUTE": "100000",
	}
	for k, v := range env {
		vars[k] = v
	}
	var cfg serveConfig
	f := newEnvFlags("test", func(k string) string { return vars[k] }, io.Discard)
	cfg.register(f)
	if err := f.Parse(nil); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := openServer(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), tracing)
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("run: %v", err)
		}
		s.close()
	})
	_, token, err := s.keys.Create(domain.NewOperatorContext(ctx), domain.CreateAPIKey{Name: "test", Scopes: []string{"admin"}})
	if err != nil {
		tb.Fatal(err)
	}
	return &testServer{server: s, url: "http://" + s.ln.Addr().String(), token: token}
}

// execute queues a command over HTTP and returns its ID.
func (ts *testServer) execute(tb testing.TB, input map[string]any) string {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
		"variables": map[string]any{"in": input},
	})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, ts.url+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ts.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var out struct {
		Data struct {
			ExecuteCommand struct{ Command struct{ ID string } }
		}
		Errors []any
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || len(out.Errors) > 0 {
		tb.Fatalf("execute: %v %v", err, out.Errors)
	}
	return out.Data.ExecuteCommand.Command.ID
}

// subscribeRaw opens a graphql-transport-ws connection and subscribes to a
// command's output, without reading further. It is safe to call from any
// goroutine.
func (ts *testServer) subscribeRaw(commandID string) (*websocket.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, res, err := d.Dial("ws"+ts.url[len("http"):]+"/graphql", nil)
	if err != nil {
		return nil, err
	}
	_ = res.Body.Close()
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + ts.token}}); err != nil {
		return c, err
	}
	var ack struct{ Type string }
	if err := c.ReadJSON(&ack); err != nil {
		return c, err
	} else if ack.Type != "connection_ack" {
		return c, fmt.Errorf("got %q, want connection_ack", ack.Type)
	}
	return c, c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query":     `subscription($id: ID!) { commandOutput(commandId: $id) { __typename } }`,
		"variables": map[string]any{"id": commandID},
	}})
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(within time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestServer_SubscriptionsComeAndGo opens 1,024 WebSocket subscriptions to
// one running command, closes them, and checks that every subscription and
// goroutine they made is gone.
func TestServer_SubscriptionsComeAndGo(t *testing.T) {
	// These clients never answer pings: with the default keep-alive the
	// server would rightly drop them as half-open before all are open.
	ts := startTestServer(t, map[string]string{"RDEV_KEEPALIVE": "10m", "RDEV_MAX_SOCKETS_PER_KEY": "0", "RDEV_MAX_SUBSCRIPTIONS_PER_KEY": "0"})
	id := ts.execute(t, map[string]any{"projectId": "demo", "argv": []string{"sleep", "3600"}})
	topic := domain.CommandTopic(id)
	runtime.GC()
	baseline := runtime.NumGoroutine()

	const n = 1024
	conns := make([]*websocket.Conn, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				conns[i], errs[i] = ts.subscribeRaw(id)
			}
		})
	}
	wg.Wait()
	for _, c := range conns {
		if c != nil {
			defer func() { _ = c.Close() }()
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !waitFor(2*time.Minute, func() bool { return ts.hub.Subscribers(topic) == n }) {
		_ = conns[0].SetReadDeadline(time.Now().Add(time.Second))
		_, msg, err := conns[0].ReadMessage()
		t.Fatalf("%d of %d subscriptions reached the hub; the first connection got %s (%v)", ts.hub.Subscribers(topic), n, msg, err)
	}
	peak := runtime.NumGoroutine()
	for _, c := range conns {
		_ = c.Close()
	}
	ok := waitFor(2*time.Minute, func() bool {
		return ts.hub.Subscribers(topic) == 0 && runtime.NumGoroutine() <= baseline+5
	})
	t.Logf("goroutines: baseline %d, with %d subscriptions %d, after closing %d", baseline, n, peak, runtime.NumGoroutine())
	if !ok {
		buf := make([]byte, 1<<20)
		t.Fatalf("subscriptions left behind: %d in the hub, %d goroutines (baseline %d)\n%s",
			ts.hub.Subscribers(topic), runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
	}
	if peak < baseline+n {
		t.Errorf("expected at least one goroutine per subscription: peak %d, baseline %d", peak, baseline)
	}
}

// TestServer_LargeOutputIntact streams a command's output, many of the
// recorder's blocks long, to a fast subscriber and a slow one at once, and
// checks that each receives it byte for byte. Output blocks are recycled
// once a subscription is done with their chunks; in a build with the race
// detector a released block is overwritten, so one recycled while gqlgen
// could still marshal its chunk would show here as corrupt output.
func TestServer_LargeOutputIntact(t *testing.T) {
	ts := startTestServer(t, nil)
	const lines = 400_000 // 2.7 MB: about ten 256 KiB blocks
	var want strings.Builder
	for i := 1; i <= lines; i++ {
		want.WriteString(strconv.Itoa(i))
		want.WriteByte('\n')
	}
	// The pause lets both subscribe before the output starts.
	id := ts.execute(t, map[string]any{"projectId": "demo", "argv": []string{"sh", "-c", "sleep 0.5; seq 1 " + strconv.Itoa(lines)}})
	var wg sync.WaitGroup
	for _, pause := range []time.Duration{0, time.Millisecond} {
		wg.Go(func() {
			var got strings.Builder
			n := 0
			status := ts.follow(t, id, func(data string) {
				got.WriteString(data)
				if n++; pause > 0 && n%4 == 0 {
					time.Sleep(pause)
				}
			})
			if status != string(domain.CommandSucceeded) || got.String() != want.String() {
				t.Errorf("subscriber pausing %s: status %s, %d bytes, want the %d written in order (first difference at byte %d)",
					pause, status, got.Len(), want.Len(), firstDifference(got.String(), want.String()))
			}
		})
	}
	wg.Wait()
}

// firstDifference returns the first index at which a and b differ.
func firstDifference(a, b string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
