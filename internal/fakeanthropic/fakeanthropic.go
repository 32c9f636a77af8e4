// Package fakeanthropic is a scripted stand-in for Anthropic's Messages API on
// loopback, for tests that run the real Claude Code CLI (or any other client
// of that API) without a network or a key.
//
// It serves POST /v1/messages (any query, such as ?beta=true) the way the API
// does: with "stream": true, as server-sent events (message_start;
// content_block_start, content_block_delta with text_delta or
// input_json_delta, content_block_stop for each block; message_delta with
// stop_reason and usage; message_stop), otherwise as one JSON message. Each
// request takes the next Turn of its script; once the script is spent, every
// request is answered with a short final text (stop_reason end_turn), so a
// client that keeps asking always comes to an end. It accepts any model name
// and any key, and records every request it receives.
package fakeanthropic

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"unicode/utf8"
)

// Spent is the text of the answer to every request once the script is spent.
const Spent = "(the fake model API has no more scripted turns)"

// Turn is one scripted answer: optional text, then optionally a tool call.
// A turn with a tool call stops with stop_reason tool_use, any other with
// end_turn.
type Turn struct {
	// Text is the text block; none if "" (unless there is no ToolUse either).
	Text string
	// ToolUse, if not nil, is a tool_use block after the text.
	ToolUse *ToolUse
	// Usage is the turn's token counts; zero values are filled in (see
	// DefaultUsage).
	Usage Usage
	// Wait, if not nil, holds the answer until it is closed (or the client
	// gives up): a run that stays RUNNING as long as a test needs.
	Wait <-chan struct{}
}

// ToolUse is a tool_use content block: the model calling a tool by name with
// a JSON input.
type ToolUse struct {
	// ID is the block's id; "" gives toolu_fake_N.
	ID    string
	Name  string
	Input json.RawMessage
}

// Usage is the token counts of one turn, as the API reports them.
type Usage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

// DefaultUsage is the usage of a turn whose Usage is zero.
var DefaultUsage = Usage{InputTokens: 100, OutputTokens: 20}

// Text returns a turn that answers with text and ends the conversation's turn.
func Text(s string) Turn { return Turn{Text: s} }

// Tool returns a turn that calls the tool name with input (marshalled to
// JSON), after the text say (none if "").
func Tool(say, name string, input any) Turn {
	raw, err := json.Marshal(input)
	if err != nil {
		panic(fmt.Sprintf("fakeanthropic.Tool: input of %s: %v", name, err))
	}
	return Turn{Text: say, ToolUse: &ToolUse{Name: name, Input: raw}}
}

// Request is one request the server received.
type Request struct {
	Method string
	// Path is the URL's path and query, e.g. "/v1/messages?beta=true".
	Path   string
	Header http.Header
	// Body is the request body as sent.
	Body []byte
	// Model, Stream and Messages are read from Body when it is a Messages
	// request; Messages are the conversation so far, one JSON value each.
	Model    string
	Stream   bool
	Messages []json.RawMessage
}

// Server is the fake API. Its methods are safe for concurrent use.
type Server struct {
	mu       sync.Mutex
	script   []Turn
	requests []Request
	served   int // Messages requests answered, for ids
}

// New returns a server that answers with turns, in order.
func New(turns ...Turn) *Server {
	return &Server{script: append([]Turn(nil), turns...)}
}

// Start serves a new server with turns on loopback until tb's cleanup, and
// returns it with its base URL (for ANTHROPIC_BASE_URL).
func Start(tb testing.TB, turns ...Turn) (*Server, string) {
	tb.Helper()
	s := New(turns...)
	hs := httptest.NewServer(s)
	tb.Cleanup(hs.Close)
	return s, hs.URL
}

// Script appends turns to the script, for the next requests.
func (s *Server) Script(turns ...Turn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, turns...)
}

// Requests returns a copy of the requests received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Env returns the environment that points the Claude Code CLI at the server
// at baseURL and keeps it from any other traffic; home is its HOME (where it
// keeps sessions, $HOME/.claude/projects/...).
func Env(baseURL, home string) map[string]string {
	return map[string]string{
		"ANTHROPIC_BASE_URL":                       baseURL,
		"ANTHROPIC_API_KEY":                        "sk-ant-fake",
		"DISABLE_TELEMETRY":                        "1",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
		"DISABLE_AUTOUPDATER":                      "1",
		"HOME":                                     home,
	}
}

// ServeHTTP records the request and answers it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body}
	isMessages := r.Method == http.MethodPost && r.URL.Path == "/v1/messages"
	var in struct {
		Model    string            `json:"model"`
		Stream   bool              `json:"stream"`
		Messages []json.RawMessage `json:"messages"`
	}
	if isMessages {
		if err := json.Unmarshal(body, &in); err != nil {
			isMessages = false
		}
		req.Model, req.Stream, req.Messages = in.Model, in.Stream, in.Messages
	}
	turn, n := s.record(req, isMessages)
	if !isMessages {
		writeError(w, http.StatusNotFound, "not_found_error", "the fake model API serves only POST /v1/messages")
		return
	}
	if turn.Wait != nil {
		select {
		case <-turn.Wait:
		case <-r.Context().Done():
			return
		}
	}
	if turn.Text == "" && turn.ToolUse == nil {
		turn.Text = Spent
	}
	if turn.Usage == (Usage{}) {
		turn.Usage = DefaultUsage
	}
	if turn.ToolUse != nil && turn.ToolUse.ID == "" {
		tu := *turn.ToolUse
		tu.ID = fmt.Sprintf("toolu_fake_%d", n)
		turn.ToolUse = &tu
	}
	m := message{id: fmt.Sprintf("msg_fake_%d", n), model: in.Model, turn: turn}
	if in.Stream {
		m.stream(w)
	} else {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(m.whole())
	}
}

// record keeps req and, for a Messages request, takes the next turn of the
// script (zero if it is spent) and its number, from 1.
func (s *Server) record(req Request, isMessages bool) (Turn, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, req)
	if !isMessages {
		return Turn{}, 0
	}
	s.served++
	var t Turn
	if len(s.script) > 0 {
		t, s.script = s.script[0], s.script[1:]
	}
	return t, s.served
}

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"type":"error","error":{"type":%q,"message":%q}}`, typ, msg)
}

// message is one answer being written.
type message struct {
	id, model string
	turn      Turn
}

func (m message) stopReason() string {
	if m.turn.ToolUse != nil {
		return "tool_use"
	}
	return "end_turn"
}

// blocks returns the content blocks of the whole message.
func (m message) blocks() []map[string]any {
	var bs []map[string]any
	if m.turn.Text != "" {
		bs = append(bs, map[string]any{"type": "text", "text": m.turn.Text})
	}
	if tu := m.turn.ToolUse; tu != nil {
		bs = append(bs, map[string]any{"type": "tool_use", "id": tu.ID, "name": tu.Name, "input": tu.Input})
	}
	return bs
}

// whole is the non-streaming answer.
func (m message) whole() []byte {
	b, _ := json.Marshal(map[string]any{
		"id": m.id, "type": "message", "role": "assistant", "model": m.model,
		"content": m.blocks(), "stop_reason": m.stopReason(), "stop_sequence": nil,
		"usage": m.turn.Usage,
	})
	return b
}

// stream writes the answer as the API's server-sent events.
func (m message) stream(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(event string, data map[string]any) {
		data["type"] = event
		b, _ := json.Marshal(data)
		_, _ = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	u := m.turn.Usage
	send("message_start", map[string]any{"message": map[string]any{
		"id": m.id, "type": "message", "role": "assistant", "model": m.model,
		"content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": Usage{InputTokens: u.InputTokens, OutputTokens: 1,
			CacheCreationInputTokens: u.CacheCreationInputTokens, CacheReadInputTokens: u.CacheReadInputTokens},
	}})
	index := 0
	if m.turn.Text != "" {
		send("content_block_start", map[string]any{"index": index, "content_block": map[string]any{"type": "text", "text": ""}})
		send("ping", map[string]any{})
		for _, piece := range halves(m.turn.Text) {
			send("content_block_delta", map[string]any{"index": index, "delta": map[string]any{"type": "text_delta", "text": piece}})
		}
		send("content_block_stop", map[string]any{"index": index})
		index++
	}
	if tu := m.turn.ToolUse; tu != nil {
		send("content_block_start", map[string]any{"index": index, "content_block": map[string]any{
			"type": "tool_use", "id": tu.ID, "name": tu.Name, "input": map[string]any{}}})
		for _, piece := range halves(string(tu.Input)) {
			send("content_block_delta", map[string]any{"index": index, "delta": map[string]any{"type": "input_json_delta", "partial_json": piece}})
		}
		send("content_block_stop", map[string]any{"index": index})
	}
	send("message_delta", map[string]any{
		"delta": map[string]any{"stop_reason": m.stopReason(), "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": u.OutputTokens},
	})
	send("message_stop", map[string]any{})
}

// halves splits s in two at a rune boundary near its middle (one piece if it
// is short), so clients see a block arrive in more than one delta.
func halves(s string) []string {
	if len(s) < 2 {
		return []string{s}
	}
	i := len(s) / 2
	for i < len(s) && !utf8.RuneStart(s[i]) {
		i++
	}
	return []string{s[:i], s[i:]}
}
