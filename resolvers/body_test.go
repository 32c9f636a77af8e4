package resolvers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// TestHandler_SlowBody: a body that trickles in (a byte, then nothing) is
// refused with 408 once BodyTimeout has passed, and its connection is let
// go, instead of holding the connection for as long as the client likes.
func TestHandler_SlowBody(t *testing.T) {
	ts := newTestServerWith(t, func(c *Config) { c.BodyTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second)) // the test's own bound, far past the server's
	if _, err := io.WriteString(conn, "POST /graphql HTTP/1.1\r\nHost: rdev\r\nAuthorization: Bearer "+ts.admin+
		"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no response to a body that never arrives: %v", err)
	}
	defer func() { _ = res.Body.Close() }()
	var body struct {
		Errors []gqlError `json:"errors"`
	}
	_ = json.NewDecoder(res.Body).Decode(&body)
	if res.StatusCode != http.StatusRequestTimeout || len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != domain.EINVALID {
		t.Errorf("got %d %+v, want 408 with code %s", res.StatusCode, body.Errors, domain.EINVALID)
	}
	if !res.Close {
		t.Errorf("the connection is kept open after a body that did not arrive")
	}
}

// TestHandler_SSEOutlivesBodyTimeout: the body's deadline is lifted once it
// is in, so an SSE subscription runs on past BodyTimeout.
func TestHandler_SSEOutlivesBodyTimeout(t *testing.T) {
	const timeout = 100 * time.Millisecond
	ts := newTestServerWith(t, func(c *Config) { c.BodyTimeout, c.KeepAlive = timeout, 20*time.Millisecond })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	start := time.Now()
	res := ts.postSSE(t, ctx, `{"query":"subscription { projectStatus { id status } }"}`)
	defer func() { _ = res.Body.Close() }()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("status %d: %s", res.StatusCode, b)
	}
	r := bufio.NewReader(res.Body)
	// Read the stream until it has lasted five times the body's timeout:
	// it must still be open then.
	for time.Since(start) < 5*timeout {
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatalf("the stream ended after %v (body timeout %v): %v", time.Since(start), timeout, err)
		}
	}
}

// TestReadAll: a body is read whole whether it declared its length, declared
// less than it sent, or declared none, and a read error is returned.
func TestReadAll(t *testing.T) {
	for _, tc := range []struct {
		name     string
		body     string
		declared int64
	}{
		{"exact", "abcdef", 6},
		{"more than declared", "abcdefghijklmnop", 3},
		{"undeclared", strings.Repeat("x", 2000), -1},
		{"empty", "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte a read, so the buffer is filled and grown bit by bit.
			b, err := readAll(iotest.OneByteReader(strings.NewReader(tc.body)), tc.declared)
			if err != nil || string(b) != tc.body {
				t.Fatalf("readAll = %q, %v; want %q", b, err, tc.body)
			}
		})
	}
	if _, err := readAll(iotest.ErrReader(io.ErrUnexpectedEOF), 5); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("readAll of a failing body: %v, want %v", err, io.ErrUnexpectedEOF)
	}
}
