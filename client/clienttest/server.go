// Package clienttest is a scripted rdev server for testing code that talks
// to rdev (the client package, the rdev CLI): queries and mutations are
// answered by a function, and each WebSocket subscription follows a
// script, so tests can drop connections, resend chunks and end commands
// exactly when they choose.
package clienttest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Key is the API key tests send to a Server.
const Key = "rdev_test"

// Server is a scripted rdev server. POSTs are answered by Answer; each
// WebSocket connection speaks graphql-transport-ws up to the subscribe
// message and then follows Script, which gets the connection's number
// (from 1). Set the fields before the first request.
type Server struct {
	URL    string
	Answer func(op string, vars map[string]any) (data any, errs []Err)
	Script func(n int, s *Session)
	// DropPosts is how many POSTs to cut off before answering.
	DropPosts int
	// UnavailablePosts is how many POSTs to answer with 503 and
	// UNAVAILABLE, as a server whose database is down does, before
	// answering.
	UnavailablePosts int

	t     testing.TB
	srv   *httptest.Server
	mu    sync.Mutex
	posts []Post
	conns int
	auth  []string // connection_init authorizations
}

// Post is one query or mutation the server received.
type Post struct {
	// Op is executeCommand, cancelCommand, command, or unknown.
	Op   string
	Auth string
	Vars map[string]any
}

// Err is a GraphQL error.
type Err struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

// CodeErr is the error list of one error with message and code.
func CodeErr(msg, code string) []Err {
	return []Err{{Message: msg, Extensions: map[string]any{"code": code}}}
}

// UnavailableErr is the error of a server whose database is down.
func UnavailableErr(retryAfter int) []Err {
	return []Err{{Message: "the database is unavailable", Extensions: map[string]any{"code": "UNAVAILABLE", "retryAfterSeconds": retryAfter}}}
}

// NewServer starts a Server, closed when t ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	f := &Server{t: t}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if websocket.IsWebSocketUpgrade(r) {
			f.serveWS(w, r)
			return
		}
		f.servePost(w, r)
	}))
	f.URL = f.srv.URL
	t.Cleanup(f.srv.Close)
	return f
}

// Close stops the server.
func (f *Server) Close() { f.srv.Close() }

func (f *Server) servePost(w http.ResponseWriter, r *http.Request) {
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
	f.posts = append(f.posts, Post{Op: op, Auth: r.Header.Get("Authorization"), Vars: req.Variables})
	drop := f.DropPosts > 0
	if drop {
		f.DropPosts--
	}
	down := !drop && f.UnavailablePosts > 0
	if down {
		f.UnavailablePosts--
	}
	answer := f.Answer
	f.mu.Unlock()
	if down {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": UnavailableErr(0)})
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
		Data   any   `json:"data"`
		Errors []Err `json:"errors,omitempty"`
	}
	if answer != nil {
		resp.Data, resp.Errors = answer(op, req.Variables)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (f *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{Subprotocols: []string{"graphql-transport-ws"}}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer func() { _ = conn.Close() }()
	f.mu.Lock()
	f.conns++
	s := &Session{t: f.t, Conn: conn, n: f.conns}
	script := f.Script
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
	s.Send(map[string]any{"type": "connection_ack"})
	for {
		var m struct {
			ID      string `json:"id"`
			Type    string `json:"type"`
			Payload struct {
				Variables map[string]any `json:"variables"`
			} `json:"payload"`
		}
		if err := conn.ReadJSON(&m); err != nil {
			f.t.Errorf("conn %d: reading subscribe: %v", s.n, err)
			return
		}
		if m.Type == "ping" {
			s.Send(map[string]any{"type": "pong"})
			continue
		}
		if m.Type != "subscribe" {
			f.t.Errorf("conn %d: want subscribe, got %q", s.n, m.Type)
			return
		}
		s.id = m.ID
		if after, ok := m.Payload.Variables["after"].(float64); ok {
			s.afterSeq = int(after)
		}
		break
	}
	script(s.n, s)
}

// Conns returns how many WebSocket connections were made.
func (f *Server) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// Auth returns the authorization of each connection_init.
func (f *Server) Auth() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.auth...)
}

// Posts returns the POSTs of op received so far.
func (f *Server) Posts(op string) []Post {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Post
	for _, p := range f.posts {
		if p.Op == op {
			out = append(out, p)
		}
	}
	return out
}

// Session is one subscribed connection of a Server.
type Session struct {
	Conn     *websocket.Conn
	t        testing.TB
	n        int
	id       string
	afterSeq int
}

// Send writes a message.
func (s *Session) Send(m any) {
	if err := s.Conn.WriteJSON(m); err != nil {
		s.t.Logf("conn %d: write: %v", s.n, err)
	}
}

// SendError ends the subscription with GraphQL errors.
func (s *Session) SendError(errs []Err) {
	s.Send(map[string]any{"id": s.id, "type": "error", "payload": errs})
}

// Complete completes the subscription.
func (s *Session) Complete() { s.Send(map[string]any{"id": s.id, "type": "complete"}) }

func (s *Session) next(event map[string]any) {
	s.Send(map[string]any{"id": s.id, "type": "next", "payload": map[string]any{"data": map[string]any{"commandOutput": event}}})
}

// Chunks sends the chunks with seqs from..to of the test command: odd
// seqs on STDOUT, even ones on STDERR, each Line(seq).
func (s *Session) Chunks(from, to int) {
	for seq := from; seq <= to; seq++ {
		s.next(map[string]any{"__typename": "OutputChunk", "seq": seq, "stream": streamOf(seq), "data": Line(seq), "at": "2026-11-23T15:04:05Z"})
	}
}

// Gap sends an OutputGap: the chunks after afterSeq and before nextSeq
// were not stored.
func (s *Session) Gap(afterSeq, nextSeq int) {
	s.next(map[string]any{"__typename": "OutputGap", "afterSeq": afterSeq, "nextSeq": nextSeq})
}

func streamOf(seq int) string {
	if seq%2 == 0 {
		return "STDERR"
	}
	return "STDOUT"
}

// Line is the data of chunk seq.
func Line(seq int) string { return fmt.Sprintf("line %d\n", seq) }

// Want returns the stdout and stderr that Chunks(from, to) makes.
func Want(from, to int) (stdout, stderr string) {
	var o, e strings.Builder
	for seq := from; seq <= to; seq++ {
		if streamOf(seq) == "STDOUT" {
			o.WriteString(Line(seq))
		} else {
			e.WriteString(Line(seq))
		}
	}
	return o.String(), e.String()
}

// Finish sends CommandFinished and completes the subscription.
func (s *Session) Finish(status string, exitCode *int, signal string, lastSeq int) {
	cmd := map[string]any{"reason": nil, "signal": nil}
	if signal != "" {
		cmd["signal"], cmd["reason"] = signal, "killed by "+signal
	}
	s.next(map[string]any{"__typename": "CommandFinished", "status": status, "exitCode": exitCode,
		"durationMs": 12, "truncated": false, "lastSeq": lastSeq, "command": cmd})
	s.Complete()
}

// Drop cuts the connection without a close frame, as a network failure
// does.
func (s *Session) Drop() { _ = s.Conn.NetConn().Close() }

// CloseWith ends the connection with a close frame.
func (s *Session) CloseWith(code int, text string) {
	_ = s.Conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(time.Second))
}

// ExpectAfter fails the test unless the subscription asked for seqs after
// afterSeq.
func (s *Session) ExpectAfter(afterSeq int) {
	if s.afterSeq != afterSeq {
		s.t.Errorf("conn %d: subscribed with afterSeq %d, want %d", s.n, s.afterSeq, afterSeq)
	}
}

// WaitClosed reads, and ignores, whatever the client sends until it
// closes the connection.
func (s *Session) WaitClosed() {
	_ = s.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := s.Conn.ReadMessage(); err != nil {
			return
		}
	}
}
