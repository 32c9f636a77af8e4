package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// timeoutEnv is a server with short HTTP timeouts, so tests see them act.
var timeoutEnv = map[string]string{
	"RDEV_READ_HEADER_TIMEOUT": "300ms", "RDEV_READ_TIMEOUT": "400ms", "RDEV_IDLE_TIMEOUT": "300ms",
	"RDEV_KEEPALIVE": "50ms", "RDEV_BODY_TIMEOUT": "300ms",
}

// dialRaw opens a plain TCP connection to ts, bounded by the test's own far
// deadline.
func (ts *testServer) dialRaw(t *testing.T) net.Conn {
	t.Helper()
	conn, err := (&net.Dialer{}).DialContext(t.Context(), "tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	return conn
}

// TestServe_SlowHeaderCut: a client that sends its request headers a byte at
// a time (slowloris) is cut off at RDEV_READ_HEADER_TIMEOUT, although it
// never stops sending.
func TestServe_SlowHeaderCut(t *testing.T) {
	ts := startTestServer(t, timeoutEnv)
	conn := ts.dialRaw(t)
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, conn)
		close(closed)
	}()
	header := "GET /healthz HTTP/1.1\r\nHost: rdev\r\nX-Slow: " + strings.Repeat("a", 10_000)
	sent := 0
	t.Cleanup(func() { _ = conn.Close() })
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-closed:
			elapsed := time.Since(start)
			// The server's clock starts a little before this one.
			if elapsed < 200*time.Millisecond {
				t.Errorf("cut after %v, well before the header timeout of 300ms", elapsed)
			}
			t.Logf("cut after %v and %d bytes", elapsed, sent)
			return
		case <-tick.C:
			if sent == len(header) {
				t.Fatalf("the server still reads a header sent a byte every 20ms after %v", time.Since(start))
			}
			if _, err := conn.Write([]byte{header[sent]}); err != nil {
				<-closed
				t.Logf("write refused after %v and %d bytes: %v", time.Since(start), sent, err)
				return
			}
			sent++
		}
	}
}

// TestServe_IdleConnectionClosed: a keep-alive connection that carries no
// request is closed after RDEV_IDLE_TIMEOUT.
func TestServe_IdleConnectionClosed(t *testing.T) {
	ts := startTestServer(t, timeoutEnv)
	conn := ts.dialRaw(t)
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: rdev\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	res, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	_ = res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Close {
		t.Fatalf("got %d close=%v, want a kept-alive 200", res.StatusCode, res.Close)
	}
	idle := time.Now()
	_, err = r.ReadByte()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: got %v, want the server to close it", err)
	}
	if elapsed := time.Since(idle); elapsed < 200*time.Millisecond {
		t.Errorf("closed after %v idle, well before the idle timeout of 300ms", elapsed)
	}
}

// TestServe_StreamsOutliveReadTimeout: an SSE subscription and a WebSocket
// subscription run on well past RDEV_READ_TIMEOUT (and RDEV_BODY_TIMEOUT),
// which bound reading a request, not the response that follows.
func TestServe_StreamsOutliveReadTimeout(t *testing.T) {
	const readTimeout = 400 * time.Millisecond
	ts := startTestServer(t, timeoutEnv)
	const query = "subscription { projectStatus { id status } }"

	t.Run("SSE", func(t *testing.T) {
		start := time.Now()
		res, err := ts.openSSE(t.Context(), ts.token, query)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = res.Body.Close() }()
		if res.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("status %d: %s", res.StatusCode, b)
		}
		r := bufio.NewReader(res.Body)
		outlast(t, start, 4*readTimeout, func() error {
			_, err := r.ReadString('\n')
			return err
		})
	})

	t.Run("WebSocket", func(t *testing.T) {
		start := time.Now()
		c, err := ts.openSocket(t.Context(), ts.token)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = c.Close() }()
		if err := c.WriteJSON(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query}}); err != nil {
			t.Fatal(err)
		}
		outlast(t, start, 4*readTimeout, func() error {
			var m struct{ Type string }
			if err := c.ReadJSON(&m); err != nil {
				return err
			}
			switch m.Type {
			case "ping":
				return c.WriteJSON(map[string]any{"type": "pong"})
			case "error", "complete":
				return fmt.Errorf("the subscription ended with %q", m.Type)
			}
			return nil
		})
	})
}

// outlast calls read until d has passed since start; it fails the test if
// read fails before.
func outlast(t *testing.T, start time.Time, d time.Duration, read func() error) {
	t.Helper()
	for time.Since(start) < d {
		if err := read(); err != nil {
			t.Fatalf("the stream ended after %v, before %v: %v", time.Since(start), d, err)
		}
	}
}

// openSSE posts query for an SSE stream with token (none if empty).
func (ts *testServer) openSSE(ctx context.Context, token, query string) (*http.Response, error) {
	body, _ := json.Marshal(map[string]string{"query": query})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return http.DefaultClient.Do(req)
}

// openSocket opens a graphql-transport-ws connection that presents token in
// connection_init (none if empty) and returns it once acknowledged; a
// refused connection returns its close error.
func (ts *testServer) openSocket(ctx context.Context, token string) (*websocket.Conn, error) {
	d := websocket.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, res, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(ts.url, "http")+"/graphql", nil)
	if err != nil {
		return nil, err
	}
	_ = res.Body.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	payload := map[string]any{}
	if token != "" {
		payload["authorization"] = "Bearer " + token
	}
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": payload}); err != nil {
		_ = c.Close()
		return nil, err
	}
	var ack struct{ Type string }
	if err := c.ReadJSON(&ack); err != nil {
		_ = c.Close()
		return nil, err
	} else if ack.Type != "connection_ack" {
		_ = c.Close()
		return nil, fmt.Errorf("got %q, want connection_ack", ack.Type)
	}
	return c, nil
}
