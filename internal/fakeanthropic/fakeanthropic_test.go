package fakeanthropic_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/internal/fakeanthropic"
)

// sse is one server-sent event.
type sse struct {
	event string
	data  map[string]any
}

// reply is a response, read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to the server's path and returns the response.
func post(t *testing.T, url, path, body string) reply {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-api-key", "any key at all")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// readSSE reads every event of a stream.
func readSSE(t *testing.T, body []byte) []sse {
	t.Helper()
	var events []sse
	var cur sse
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.data); err != nil {
				t.Fatal(err)
			}
		case line == "":
			if cur.event != "" {
				if cur.data["type"] != cur.event {
					t.Errorf("event %s carries type %v", cur.event, cur.data["type"])
				}
				events = append(events, cur)
			}
			cur = sse{}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

func names(events []sse) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.event)
	}
	return out
}

// deltas joins the content_block_delta pieces of one kind.
func deltas(events []sse, kind, field string) string {
	var b strings.Builder
	for _, e := range events {
		if d, ok := e.data["delta"].(map[string]any); ok && d["type"] == kind {
			b.WriteString(d[field].(string))
		}
	}
	return b.String()
}

func stopReason(events []sse) any {
	for _, e := range events {
		if e.event == "message_delta" {
			return e.data["delta"].(map[string]any)["stop_reason"]
		}
	}
	return nil
}

func TestServer_Stream(t *testing.T) {
	s, url := fakeanthropic.Start(t,
		fakeanthropic.Tool("Let me look.", "Bash", map[string]string{"command": "ls | wc -l"}),
		fakeanthropic.Text("Three files, ✓."),
	)
	const body = `{"model":"any-model-at-all","stream":true,"messages":[{"role":"user","content":"count"}]}`

	t.Run("ToolUse", func(t *testing.T) {
		resp := post(t, url, "/v1/messages?beta=true", body)
		if ct := resp.header.Get("Content-Type"); resp.status != http.StatusOK || ct != "text/event-stream" {
			t.Fatalf("status %d, content type %q", resp.status, ct)
		}
		events := readSSE(t, resp.body)
		want := []string{
			"message_start",
			"content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_stop",
			"content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
			"message_delta", "message_stop",
		}
		if got := names(events); !reflect.DeepEqual(got, want) {
			t.Fatalf("events %v, want %v", got, want)
		}
		if got := deltas(events, "text_delta", "text"); got != "Let me look." {
			t.Errorf("text %q", got)
		}
		if got := deltas(events, "input_json_delta", "partial_json"); got != `{"command":"ls | wc -l"}` {
			t.Errorf("tool input %q", got)
		}
		block := events[6].data["content_block"].(map[string]any)
		if block["type"] != "tool_use" || block["name"] != "Bash" || block["id"] != "toolu_fake_1" {
			t.Errorf("tool_use block %v", block)
		}
		if got := stopReason(events); got != "tool_use" {
			t.Errorf("stop_reason %v, want tool_use", got)
		}
		if m := events[0].data["message"].(map[string]any); m["model"] != "any-model-at-all" {
			t.Errorf("model %v", m["model"])
		}
	})
	t.Run("Text", func(t *testing.T) {
		events := readSSE(t, post(t, url, "/v1/messages", body).body)
		if got := deltas(events, "text_delta", "text"); got != "Three files, ✓." {
			t.Errorf("text %q", got)
		}
		if got := stopReason(events); got != "end_turn" {
			t.Errorf("stop_reason %v, want end_turn", got)
		}
	})
	t.Run("Spent", func(t *testing.T) {
		events := readSSE(t, post(t, url, "/v1/messages", body).body)
		if got := deltas(events, "text_delta", "text"); got != fakeanthropic.Spent || stopReason(events) != "end_turn" {
			t.Errorf("text %q, stop_reason %v: want the end_turn answer of a spent script", got, stopReason(events))
		}
	})
	t.Run("NotStreaming", func(t *testing.T) {
		s.Script(fakeanthropic.Text("whole"))
		var m struct {
			Content    []map[string]any
			StopReason string `json:"stop_reason"`
		}
		if err := json.Unmarshal(post(t, url, "/v1/messages", `{"model":"m","messages":[]}`).body, &m); err != nil {
			t.Fatal(err)
		}
		if len(m.Content) != 1 || m.Content[0]["text"] != "whole" || m.StopReason != "end_turn" {
			t.Errorf("message %+v", m)
		}
	})
	t.Run("OtherPath", func(t *testing.T) {
		if resp := post(t, url, "/v1/complete", "{}"); resp.status != http.StatusNotFound {
			t.Errorf("status %d, want 404", resp.status)
		}
	})
	t.Run("Recorded", func(t *testing.T) {
		reqs := s.Requests()
		if len(reqs) != 5 {
			t.Fatalf("%d requests recorded, want 5", len(reqs))
		}
		r := reqs[0]
		if r.Path != "/v1/messages?beta=true" || r.Model != "any-model-at-all" || !r.Stream || len(r.Messages) != 1 ||
			string(r.Body) != body || r.Header.Get("x-api-key") != "any key at all" {
			t.Errorf("first request %+v", r)
		}
		if reqs[4].Path != "/v1/complete" || reqs[4].Model != "" {
			t.Errorf("last request %+v", reqs[4])
		}
	})
}

func TestServer_Wait(t *testing.T) {
	release := make(chan struct{})
	s, url := fakeanthropic.Start(t, fakeanthropic.Turn{Text: "late", Wait: release})
	got := make(chan reply, 1)
	go func() { got <- post(t, url, "/v1/messages", `{"model":"m","messages":[]}`) }()
	// The request arrived, and is held until the release.
	for len(s.Requests()) == 0 {
		select {
		case r := <-got:
			t.Fatalf("answered before the release: %s", r.body)
		default:
			runtime.Gosched()
		}
	}
	select {
	case r := <-got:
		t.Fatalf("answered before the release: %s", r.body)
	default:
	}
	close(release)
	if r := <-got; r.status != http.StatusOK || !strings.Contains(string(r.body), "late") {
		t.Errorf("after the release: %d %s", r.status, r.body)
	}
}
