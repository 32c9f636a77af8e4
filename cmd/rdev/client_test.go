package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

const testKey = "rdev_test"

// fakeServer is a scripted rdev server. POSTs are answered by answer; each
// WebSocket connection speaks graphql-transport-ws up to the subscribe
// message and then follows script, which gets the connection's number
// (from 1) and the subscription's variables.
type fakeServer struct {
	t      *testing.T
	srv    *httptest.Server
	answer func(op string, vars map[string]any) (data any, errs []gqlErr)
	script func(n int, s *fakeSession)
	// dropPosts is how many POSTs to cut off before answering.
	dropPosts int
	// unavailablePosts is how many POSTs to answer with 503 and
	// UNAVAILABLE, as a server whose database is down does, before
	// answering.
	unavailablePosts int

	mu    sync.Mutex
	posts []fakePost
	conns int
	auth  []string // connection_init authorizations
}

type fakePost struct {
	op   string
	auth string
	vars map[string]any
}

type gqlErr struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

func codeErr(msg, code string) []gqlErr {
	return []gqlErr{{Message: msg, Extensions: map[string]any{"code": code}}}
}

// unavailableErr is the error of a server whose database is down.
func unavailableErr(retryAfter int) []gqlErr {
	return []gqlErr{{Message: "the database is unavailable", Extensions: map[string]any{"code": "UNAVAILABLE", "retryAfterSeconds": retryAfter}}}
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			f.serveWS(w, r)
			return
		}
		f.servePost(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// client returns a client of f with fast reconnects.
func (f *fakeServer) client(t *testing.T) *client {
	t.Helper()
	c, err := newClient(f.srv.URL, testKey)
	if err != nil {
		t.Fatal(err)
	}
	c.reconnect = backoff{min: 10 * time.Millisecond, max: 50 * time.Millisecond, giveUp: time.Second}
	return c
}

func (f *fakeServer) servePost(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	op := "unknown"
	for _, name := range []string{"executeCommand", "cancelCommand", "command"} {
		if strings.Contains(req.Query, name+"(") {
			op = name
			break
		}
	}
	f.mu.Lock()
	f.posts = append(f.posts, fakePost{op: op, auth: r.Header.Get("Authorization"), vars: req.Variables})
	drop := f.dropPosts > 0
	if drop {
		f.dropPosts--
	}
	down := !drop && f.unavailablePosts > 0
	if down {
		f.unavailablePosts--
	}
	f.mu.Unlock()
	if down {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": unavailableErr(0)})
		return
	}
	if drop { // a network failure after the request went out
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
		return
	}
	var resp struct {
		Data   any      `json:"data"`
		Errors []gqlErr `json:"errors,omitempty"`
	}
	if f.answer != nil {
		resp.Data, resp.Errors = f.answer(op, req.Variables)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *fakeServer) serveWS(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{Subprotocols: []string{"graphql-transport-ws"}}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	f.mu.Lock()
	f.conns++
	s := &fakeSession{t: f.t, conn: conn, n: f.conns}
	script := f.script
	f.mu.Unlock()

	var init struct {
		Type    string            `json:"type"`
		Payload map[string]string `json:"payload"`
	}
	if conn.ReadJSON(&init) != nil || init.Type != "connection_init" {
		f.t.Errorf("conn %d: want connection_init first, got %+v", s.n, init)
		return
	}
	f.mu.Lock()
	f.auth = append(f.auth, init.Payload["authorization"])
	f.mu.Unlock()
	if script == nil {
		return
	}
	s.send(map[string]any{"type": "connection_ack"})
	for {
		var m struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Payload struct {
				Query     string         `json:"query"`
				Variables map[string]any `json:"variables"`
			} `json:"payload"`
		}
		if err := conn.ReadJSON(&m); err != nil {
			f.t.Errorf("conn %d: reading subscribe: %v", s.n, err)
			return
		}
		if m.Type == "ping" {
			s.send(map[string]any{"type": "pong"})
			continue
		}
		if m.Type != "subscribe" {
			f.t.Errorf("conn %d: want subscribe, got %q", s.n, m.Type)
			return
		}
		s.id, s.vars = m.ID, m.Payload.Variables
		if after, ok := m.Payload.Variables["after"].(float64); ok {
			s.afterSeq = int(after)
		}
		break
	}
	script(s.n, s)
}

func (f *fakeServer) connCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func (f *fakeServer) postsOf(op string) []fakePost {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakePost
	for _, p := range f.posts {
		if p.op == op {
			out = append(out, p)
		}
	}
	return out
}

// fakeSession is one subscribed connection of a fakeServer.
type fakeSession struct {
	t        *testing.T
	conn     *websocket.Conn
	n        int
	id       string
	vars     map[string]any
	afterSeq int
}

func (s *fakeSession) send(m any) {
	if err := s.conn.WriteJSON(m); err != nil {
		s.t.Logf("conn %d: write: %v", s.n, err)
	}
}

func (s *fakeSession) next(event map[string]any) {
	s.send(map[string]any{"id": s.id, "type": "next", "payload": map[string]any{"data": map[string]any{"commandOutput": event}}})
}

// chunks sends the chunks with seqs from..to of the test command: odd seqs
// on STDOUT, even ones on STDERR.
func (s *fakeSession) chunks(from, to int) {
	for seq := from; seq <= to; seq++ {
		s.next(map[string]any{"__typename": "OutputChunk", "seq": seq, "stream": streamOf(seq), "data": line(seq), "at": "2026-11-23T15:04:05Z"})
	}
}

func streamOf(seq int) string {
	if seq%2 == 0 {
		return "STDERR"
	}
	return "STDOUT"
}

func line(seq int) string { return fmt.Sprintf("line %d\n", seq) }

// want returns the stdout and stderr that chunks from..to make.
func want(from, to int) (stdout, stderr string) {
	var o, e strings.Builder
	for seq := from; seq <= to; seq++ {
		if streamOf(seq) == "STDOUT" {
			o.WriteString(line(seq))
		} else {
			e.WriteString(line(seq))
		}
	}
	return o.String(), e.String()
}

// finish sends CommandFinished and completes the subscription.
func (s *fakeSession) finish(status string, exitCode *int, signal string, lastSeq int) {
	cmd := map[string]any{"reason": nil, "signal": nil}
	if signal != "" {
		cmd["signal"], cmd["reason"] = signal, "killed by "+signal
	}
	s.next(map[string]any{"__typename": "CommandFinished", "status": status, "exitCode": exitCode,
		"durationMs": 12, "truncated": false, "lastSeq": lastSeq, "command": cmd})
	s.send(map[string]any{"id": s.id, "type": "complete"})
}

// drop cuts the connection without a close frame, as a network failure does.
func (s *fakeSession) drop() { _ = s.conn.NetConn().Close() }

// closeWith ends the connection with a close frame.
func (s *fakeSession) closeWith(code int, text string) {
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}

// expectAfter fails the test unless the subscription asked for seqs after
// afterSeq.
func (s *fakeSession) expectAfter(afterSeq int) {
	if s.afterSeq != afterSeq {
		s.t.Errorf("conn %d: subscribed with afterSeq %d, want %d", s.n, s.afterSeq, afterSeq)
	}
}

// waitClosed reads, and ignores, whatever the client sends until it
// closes the connection.
func (s *fakeSession) waitClosed() {
	_ = s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := s.conn.ReadMessage(); err != nil {
			return
		}
	}
}

func TestClient_Subscribe(t *testing.T) {
	t.Run("ReconnectsWithoutLossOrRepeat", func(t *testing.T) {
		before := runtime.NumGoroutine()
		f := newFakeServer(t)
		f.script = func(n int, s *fakeSession) {
			switch n {
			case 1:
				s.expectAfter(0)
				s.chunks(1, 3)
				s.drop()
			case 2:
				s.expectAfter(3)
				s.chunks(2, 5) // 2 and 3 again: an at-least-once resend
				s.closeWith(websocket.CloseGoingAway, "server restarting")
			case 3:
				s.expectAfter(5)
				s.chunks(6, 8)
				s.finish("SUCCEEDED", new(0), "", 8)
			default:
				t.Errorf("unexpected connection %d", n)
			}
		}
		var stdout, stderr strings.Builder
		fl := newFollower(f.client(t), "cmd1", 0, &stdout, &stderr)
		fin, err := fl.run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		wantOut, wantErr := want(1, 8)
		if stdout.String() != wantOut || stderr.String() != wantErr {
			t.Errorf("stdout %q, stderr %q; want %q and %q", stdout.String(), stderr.String(), wantOut, wantErr)
		}
		if fin == nil || fin.exitCode() != 0 || fin.LastSeq != 8 {
			t.Errorf("finished = %+v, want SUCCEEDED at seq 8", fin)
		}
		if got := f.connCount(); got != 3 {
			t.Errorf("connections = %d, want 3", got)
		}
		f.mu.Lock()
		got := f.auth
		f.mu.Unlock()
		if len(got) == 0 || got[0] != "Bearer "+testKey {
			t.Errorf("connection_init authorization = %q, want Bearer %s", got, testKey)
		}
		f.srv.Close()
		waitGoroutines(t, before)
	})

	t.Run("AnswersPings", func(t *testing.T) {
		f := newFakeServer(t)
		f.script = func(n int, s *fakeSession) {
			s.send(map[string]any{"type": "ping"})
			var m wsMessage
			_ = s.conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			if err := s.conn.ReadJSON(&m); err != nil || m.Type != "pong" {
				t.Errorf("after ping got %+v, %v; want pong", m, err)
			}
			s.chunks(1, 1)
			s.finish("SUCCEEDED", new(0), "", 1)
		}
		var stdout, stderr strings.Builder
		if _, err := newFollower(f.client(t), "cmd1", 0, &stdout, &stderr).run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if stdout.String() != line(1) {
			t.Errorf("stdout = %q", stdout.String())
		}
	})

	t.Run("ReconnectsAfterSilence", func(t *testing.T) {
		f := newFakeServer(t)
		f.script = func(n int, s *fakeSession) {
			switch n {
			case 1:
				s.chunks(1, 1)
				s.waitClosed() // half-open: never answers the client's pings
			default:
				s.expectAfter(1)
				s.chunks(2, 2)
				s.finish("SUCCEEDED", new(0), "", 2)
			}
		}
		c := f.client(t)
		c.keepAlive = 50 * time.Millisecond
		var stdout, stderr strings.Builder
		start := time.Now()
		if _, err := newFollower(c, "cmd1", 0, &stdout, &stderr).run(t.Context()); err != nil {
			t.Fatal(err)
		}
		if stdout.String() != line(1) || stderr.String() != line(2) {
			t.Errorf("stdout %q, stderr %q", stdout.String(), stderr.String())
		}
		if f.connCount() != 2 || time.Since(start) > 2*time.Second {
			t.Errorf("%d connections in %s; want 2, soon after 2 keep-alives", f.connCount(), time.Since(start))
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		f := newFakeServer(t)
		f.script = func(n int, s *fakeSession) {
			s.send(map[string]any{"id": s.id, "type": "error", "payload": codeErr("command x not found", "NOT_FOUND")})
			s.waitClosed()
		}
		_, err := newFollower(f.client(t), "x", 0, new(strings.Builder), new(strings.Builder)).run(t.Context())
		if err == nil || err.Error() != "command x not found (NOT_FOUND)" || errorCode(err) != "NOT_FOUND" {
			t.Errorf("err = %v, want command x not found (NOT_FOUND)", err)
		}
		if f.connCount() != 1 {
			t.Errorf("connections = %d, want 1: a server error is final", f.connCount())
		}
	})

	// A server whose database is down says so in every way it can: an
	// error message ends the subscription, connection_init closes with
	// 1013, a subscription completes early. The client keeps going,
	// resuming after the last seq it printed, until the command ends.
	t.Run("SurvivesOutage", func(t *testing.T) {
		f := newFakeServer(t)
		f.script = func(n int, s *fakeSession) {
			switch n {
			case 1:
				s.chunks(1, 2)
				s.send(map[string]any{"id": s.id, "type": "error", "payload": unavailableErr(0)})
				s.waitClosed()
			case 2:
				s.closeWith(1013, "Try Again Later: the database is unavailable")
			case 3:
				s.expectAfter(2)
				s.send(map[string]any{"id": s.id, "type": "complete"})
				s.waitClosed()
			default:
				s.expectAfter(2)
				s.chunks(3, 4)
				s.finish("SUCCEEDED", new(0), "", 4)
			}
		}
		var stdout, stderr strings.Builder
		fin, err := newFollower(f.client(t), "cmd1", 0, &stdout, &stderr).run(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if wantOut, wantErr := want(1, 4); stdout.String() != wantOut || stderr.String() != wantErr || fin == nil {
			t.Errorf("stdout %q, stderr %q, finished %v", stdout.String(), stderr.String(), fin)
		}
	})

	t.Run("ErrForbiddenClose", func(t *testing.T) {
		f := newFakeServer(t)
		f.script = func(n int, s *fakeSession) {
			s.closeWith(4403, "Forbidden: the API key was revoked")
			s.waitClosed()
		}
		_, err := newFollower(f.client(t), "x", 0, new(strings.Builder), new(strings.Builder)).run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "Forbidden: the API key was revoked (4403)") {
			t.Errorf("err = %v, want the close reason", err)
		}
		if f.connCount() != 1 {
			t.Errorf("connections = %d, want 1: 4403 is final", f.connCount())
		}
	})

	t.Run("GivesUp", func(t *testing.T) {
		f := newFakeServer(t) // no script: the server hangs up after connection_init
		c := f.client(t)
		c.reconnect.giveUp = 200 * time.Millisecond
		start := time.Now()
		_, err := newFollower(c, "cmd1", 4, new(strings.Builder), new(strings.Builder)).run(t.Context())
		if err == nil || !strings.Contains(err.Error(), "lost the connection") ||
			!strings.Contains(err.Error(), "rdev logs --follow --after-seq 4 cmd1") {
			t.Errorf("err = %v, want lost the connection with a resume hint", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
			t.Errorf("gave up after %s, want about 200ms", d)
		}
		if f.connCount() < 3 {
			t.Errorf("connections = %d, want several attempts", f.connCount())
		}
	})

	t.Run("StopsOnCancel", func(t *testing.T) {
		f := newFakeServer(t)
		f.script = func(n int, s *fakeSession) { s.chunks(1, 1); s.waitClosed() }
		ctx, cancel := context.WithCancel(t.Context())
		stdout := writerFunc(func(p []byte) (int, error) { cancel(); return len(p), nil })
		_, err := newFollower(f.client(t), "cmd1", 0, stdout, new(strings.Builder)).run(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestClient_Do(t *testing.T) {
	t.Run("RetriesTransportErrors", func(t *testing.T) {
		f := newFakeServer(t)
		f.dropPosts = 2
		f.answer = func(op string, vars map[string]any) (any, []gqlErr) {
			return map[string]any{"command": map[string]any{"status": "RUNNING"}}, nil
		}
		var out struct {
			Command struct{ Status string } `json:"command"`
		}
		if err := f.client(t).do(t.Context(), commandQuery, map[string]any{"id": "c"}, &out); err != nil {
			t.Fatal(err)
		}
		if out.Command.Status != "RUNNING" || len(f.postsOf("command")) != 3 {
			t.Errorf("got %+v after %d posts, want RUNNING after 3", out, len(f.postsOf("command")))
		}
		if p := f.postsOf("command")[2]; p.auth != "Bearer "+testKey {
			t.Errorf("Authorization = %q", p.auth)
		}
	})

	// However long the outage, within giveUp: more 503s than any fixed
	// number of attempts would allow.
	t.Run("RetriesUnavailable", func(t *testing.T) {
		f := newFakeServer(t)
		f.unavailablePosts = 12
		f.answer = func(string, map[string]any) (any, []gqlErr) {
			return map[string]any{"command": map[string]any{"status": "RUNNING"}}, nil
		}
		var out struct {
			Command struct{ Status string } `json:"command"`
		}
		if err := f.client(t).do(t.Context(), commandQuery, map[string]any{"id": "c"}, &out); err != nil {
			t.Fatal(err)
		}
		if out.Command.Status != "RUNNING" || len(f.postsOf("command")) != 13 {
			t.Errorf("got %+v after %d posts, want RUNNING after 13", out, len(f.postsOf("command")))
		}
	})

	t.Run("RetriesRateLimited", func(t *testing.T) {
		f := newFakeServer(t)
		refused := 2
		f.answer = func(string, map[string]any) (any, []gqlErr) {
			if refused > 0 {
				refused--
				return nil, []gqlErr{{Message: "rate limit exceeded", Extensions: map[string]any{"code": "RATE_LIMITED", "retryAfterSeconds": 0}}}
			}
			return map[string]any{"command": map[string]any{"status": "RUNNING"}}, nil
		}
		if err := f.client(t).do(t.Context(), commandQuery, nil, nil); err != nil {
			t.Fatal(err)
		}
		if n := len(f.postsOf("command")); n != 3 {
			t.Errorf("%d posts, want 3", n)
		}
	})

	t.Run("GivesUp", func(t *testing.T) {
		f := newFakeServer(t)
		f.unavailablePosts = 1 << 30
		c := f.client(t)
		c.reconnect.giveUp = 200 * time.Millisecond
		start := time.Now()
		err := c.do(t.Context(), commandQuery, nil, nil)
		if err == nil || errorCode(err) != "UNAVAILABLE" || !strings.Contains(err.Error(), "the database is unavailable") {
			t.Errorf("err = %v, want the server's UNAVAILABLE", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
			t.Errorf("gave up after %s, want about 200ms", d)
		}
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		f := newFakeServer(t)
		f.answer = func(string, map[string]any) (any, []gqlErr) {
			return nil, codeErr("invalid API key", "UNAUTHENTICATED")
		}
		err := f.client(t).do(t.Context(), commandQuery, nil, nil)
		if err == nil || err.Error() != "invalid API key (UNAUTHENTICATED)" {
			t.Errorf("err = %v", err)
		}
		if n := len(f.postsOf("command")); n != 1 {
			t.Errorf("%d posts, want 1: a server error is not retried", n)
		}
	})
}

// waitGoroutines fails t unless the goroutine count comes back down to
// before.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			t.Errorf("%d goroutines, want at most %d", runtime.NumGoroutine(), before)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Waits are spread over the upper half of their span, so clients that lost
// the server together come back apart; a server's hint is waited out.
func TestDelay(t *testing.T) {
	const wait = 100 * time.Millisecond
	seen := map[time.Duration]bool{}
	for range 200 {
		d := delay(wait, 0)
		if d < wait/2 || d > wait {
			t.Fatalf("delay(%s, 0) = %s, want within [%s, %s]", wait, d, wait/2, wait)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("200 delays took %d values: not spread", len(seen))
	}
	if d := delay(wait, 2*time.Second); d != 2*time.Second {
		t.Errorf("delay with a 2s hint = %s", d)
	}
}
