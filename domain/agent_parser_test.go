package domain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// transcripts are the recorded outputs of the real CLI (testdata/agent).
func transcripts(tb testing.TB) map[string][]byte {
	tb.Helper()
	paths, err := filepath.Glob("testdata/agent/*.jsonl")
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no transcripts in testdata/agent: %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p) //nolint:gosec // the test's own testdata
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// parseAll parses output given in the chunks, then closes the parser.
func parseAll(p AgentProtocol, maxLine int, chunks ...[]byte) []AgentEvent {
	ps := NewAgentParser(p, maxLine)
	var events []AgentEvent
	for _, c := range chunks {
		events = append(events, ps.Parse(c)...)
	}
	return append(events, ps.Close()...)
}

// formatEvents prints events one a line, for failure messages.
func formatEvents(events []AgentEvent) string {
	var b strings.Builder
	for i, e := range events {
		fmt.Fprintf(&b, "  %d: %T %+v\n", i, e, e)
	}
	return b.String()
}

func wantEvents(t *testing.T, got, want []AgentEvent) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", formatEvents(got), formatEvents(want))
	}
}

func TestAgentParser_SplitAnywhere(t *testing.T) {
	claude := NewClaudeCode()
	for name, b := range transcripts(t) {
		t.Run(name, func(t *testing.T) {
			whole := parseAll(claude, 0, b)
			if len(whole) == 0 {
				t.Fatal("no events")
			}
			// Byte by byte.
			var bytewise [][]byte
			for i := range b {
				bytewise = append(bytewise, b[i:i+1])
			}
			wantEvents(t, parseAll(claude, 0, bytewise...), whole)
			// Split in two at every boundary, for the transcripts with the
			// most kinds of lines. What is under test is the framing, so
			// each line is decoded once (memoProtocol), keeping this quick
			// under the race detector.
			if name != "claude-tool.jsonl" && name != "claude-edited-forward-compat.jsonl" {
				return
			}
			memo := memoProtocol{AgentProtocol: claude, decoded: map[string][]AgentEvent{}}
			for i := range len(b) + 1 {
				if got := parseAll(memo, 0, b[:i], b[i:]); !reflect.DeepEqual(got, whole) {
					t.Fatalf("split at %d: events:\n%s\nwant:\n%s", i, formatEvents(got), formatEvents(whole))
				}
			}
		})
	}
}

func TestAgentParser_Lines(t *testing.T) {
	claude := NewClaudeCode()
	t.Run("WhiteSpaceLinesYieldNothing", func(t *testing.T) {
		wantEvents(t, parseAll(claude, 0, []byte("\n \t\r\n\r\n   \n")), nil)
	})
	t.Run("LastLineWithoutLineEnd", func(t *testing.T) {
		wantEvents(t, parseAll(claude, 0, []byte("one\ntwo")), []AgentEvent{&AgentRaw{Line: "one"}, &AgentRaw{Line: "two"}})
	})
	t.Run("CRLF", func(t *testing.T) {
		wantEvents(t, parseAll(claude, 0, []byte("one\r"), []byte("\ntwo\r\n")), []AgentEvent{&AgentRaw{Line: "one"}, &AgentRaw{Line: "two"}})
	})
	t.Run("CloseResets", func(t *testing.T) {
		p := NewAgentParser(claude, 4)
		p.Parse([]byte("abcdefgh"))
		wantEvents(t, p.Close(), []AgentEvent{&AgentRaw{Line: "efgh"}})
		wantEvents(t, p.Close(), nil)
		wantEvents(t, p.Parse([]byte("x\n")), []AgentEvent{&AgentRaw{Line: "x"}})
	})
	t.Run("CutBeforeACharacter", func(t *testing.T) {
		// "é" is two bytes: a cut at 2 would split it.
		wantEvents(t, parseAll(claude, 2, []byte("aéb\n")), []AgentEvent{&AgentRaw{Line: "a"}, &AgentRaw{Line: "é"}, &AgentRaw{Line: "b"}})
		// Bytes that are no UTF-8 are cut where the bound falls.
		wantEvents(t, parseAll(claude, 2, []byte("\x80\x80\x80\n")), []AgentEvent{&AgentRaw{Line: "\x80\x80"}, &AgentRaw{Line: "\x80"}})
	})
	t.Run("ProtocolThatYieldsNothing", func(t *testing.T) {
		wantEvents(t, parseAll(silentProtocol{}, 0, []byte("{}\n")), []AgentEvent{&AgentRaw{Line: "{}"}})
	})
}

func TestAgentParser_Overlong(t *testing.T) {
	claude := NewClaudeCode()
	text := []byte(`{"type":"assistant","message":{"role":"assistant","content":"héllo wörld, ünïcödé that is cut somewhere in the middle of a character, ✓✓✓✓"}}`)
	line := append(append([]byte(nil), text...), '\n')
	next := []byte(`{"type":"user","message":{"role":"user","content":"ok"}}` + "\n")
	const maxLine = 60
	whole := parseAll(claude, maxLine, line, next)
	var joined []byte
	for i, e := range whole[:len(whole)-1] {
		r, ok := e.(*AgentRaw)
		if !ok || len(r.Line) > maxLine || len(r.Line) == 0 || !utf8.ValidString(r.Line) {
			t.Fatalf("piece %d = %#v, want an AgentRaw of 1 to %d bytes of valid UTF-8", i, e, maxLine)
		}
		joined = append(joined, r.Line...)
	}
	if !bytes.Equal(joined, text) {
		t.Errorf("pieces make %q, want %q", joined, text)
	}
	if m, ok := whole[len(whole)-1].(*AgentMessage); !ok || m.Text != "ok" || len(whole) < 3 {
		t.Errorf("the line after the overlong one gave %#v, want its message", whole[len(whole)-1])
	}
	for i := range line {
		if got := parseAll(claude, maxLine, line[:i], line[i:], next); !reflect.DeepEqual(got, whole) {
			t.Fatalf("split at %d: events:\n%s\nwant:\n%s", i, formatEvents(got), formatEvents(whole))
		}
	}
	// A line of exactly maxLine bytes is decoded.
	exact := []byte(`{"type":"x"}    `)
	wantEvents(t, parseAll(claude, len(exact), exact), []AgentEvent{&AgentRaw{Line: string(exact)}})
	wantEvents(t, parseAll(claude, len(exact)-1, exact), []AgentEvent{&AgentRaw{Line: string(exact[:len(exact)-1])}, &AgentRaw{Line: " "}})
}

// memoProtocol decodes each distinct line once.
type memoProtocol struct {
	AgentProtocol
	decoded map[string][]AgentEvent
}

func (m memoProtocol) DecodeLine(line []byte) []AgentEvent {
	events, ok := m.decoded[string(line)]
	if !ok {
		events = m.AgentProtocol.DecodeLine(line)
		m.decoded[string(line)] = events
	}
	return events
}

// silentProtocol breaks DecodeLine's promise: it yields nothing.
type silentProtocol struct{}

func (silentProtocol) Name() string                        { return "silent" }
func (silentProtocol) Argv(AgentRequest) ([]string, error) { return nil, nil }
func (silentProtocol) DecodeLine([]byte) []AgentEvent      { return nil }

func TestAgentProtocols(t *testing.T) {
	r := NewAgentProtocols(NewClaudeCode(), silentProtocol{})
	if p, err := r.Lookup(ClaudeCodeProtocol); err != nil || p.Name() != ClaudeCodeProtocol {
		t.Errorf("Lookup(%s) = %v, %v", ClaudeCodeProtocol, p, err)
	}
	_, err := r.Lookup("codex")
	wantInvalid(t, err, "agent")
	if !strings.Contains(ErrorMessage(err), "(known: claude-code, silent)") {
		t.Errorf("message %q does not name the known protocols", ErrorMessage(err))
	}
	if got := r.Names(); !reflect.DeepEqual(got, []string{"claude-code", "silent"}) {
		t.Errorf("Names() = %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a name twice did not panic")
		}
	}()
	r.Register(NewClaudeCode())
}

// FuzzAgentParser checks that the parser never panics; that where chunks
// split the output makes no difference; and that no byte is lost: each line
// that is not white space yields at least one event, a line longer than the
// bound comes out whole in AgentRaw pieces, and a line that is not a JSON
// object comes out whole in one AgentRaw (as does any line the protocol does
// not understand entirely, which an AgentRaw holding the line shows).
func FuzzAgentParser(f *testing.F) {
	for _, b := range transcripts(f) {
		f.Add(b, uint16(len(b)/2), uint8(0))
		for line := range bytes.SplitSeq(b, []byte("\n")) {
			f.Add(line, uint16(len(line)/3), uint8(40))
		}
	}
	f.Add([]byte("not json\n{\"type\":\"result\"}\r\n\n  \n{"), uint16(3), uint8(5))
	f.Add([]byte("\xff\xfe\n{\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\",\"content\":[{\"type\":\"image\"}]}]}}"), uint16(1), uint8(0))
	claude := NewClaudeCode()
	f.Fuzz(func(t *testing.T, data []byte, split uint16, bound uint8) {
		maxLine := DefaultMaxAgentLine
		if bound > 0 {
			maxLine = int(bound)
		}
		whole := parseAll(claude, maxLine, data)
		at := int(split) % (len(data) + 1)
		if got := parseAll(claude, maxLine, data[:at], data[at:]); !reflect.DeepEqual(got, whole) {
			t.Fatalf("split at %d: events:\n%s\nwant:\n%s", at, formatEvents(got), formatEvents(whole))
		}
		var byLine []AgentEvent
		p := NewAgentParser(claude, maxLine)
		lines := bytes.Split(data, []byte("\n"))
		for i, line := range lines {
			var events []AgentEvent
			if i < len(lines)-1 {
				events = p.Parse(append(append([]byte(nil), line...), '\n'))
			} else {
				events = append(p.Parse(line), p.Close()...)
			}
			checkLine(t, line, maxLine, events)
			byLine = append(byLine, events...)
		}
		if !reflect.DeepEqual(byLine, whole) {
			t.Fatalf("line by line: events:\n%s\nwant:\n%s", formatEvents(byLine), formatEvents(whole))
		}
	})
}

// checkLine checks the events of one line (without its "\n").
func checkLine(t *testing.T, line []byte, maxLine int, events []AgentEvent) {
	t.Helper()
	trimmed := bytes.TrimSuffix(line, []byte("\r"))
	switch {
	case len(line) > maxLine:
		var joined []byte
		for _, e := range events {
			r, ok := e.(*AgentRaw)
			if !ok || len(r.Line) > maxLine {
				t.Fatalf("overlong line %q gave %#v, want AgentRaw pieces of at most %d bytes", line, e, maxLine)
			}
			joined = append(joined, r.Line...)
		}
		if !bytes.Equal(joined, trimmed) {
			t.Fatalf("overlong line %q came out as %q", line, joined)
		}
	case len(bytes.TrimSpace(line)) == 0:
		if len(events) != 0 {
			t.Fatalf("white space %q gave events:\n%s", line, formatEvents(events))
		}
	case len(events) == 0:
		t.Fatalf("line %q gave no event", line)
	default:
		var obj map[string]json.RawMessage
		if json.Unmarshal(line, &obj) != nil {
			if len(events) != 1 || !reflect.DeepEqual(events[0], &AgentRaw{Line: string(trimmed)}) {
				t.Fatalf("line %q that is no JSON object gave:\n%s", line, formatEvents(events))
			}
		}
		for _, e := range events {
			if r, ok := e.(*AgentRaw); ok && r.Line != string(trimmed) {
				t.Fatalf("line %q gave an AgentRaw of %q, not of the whole line", line, r.Line)
			}
		}
	}
}
