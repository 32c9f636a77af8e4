package client_test

import (
	"context"
	"errors"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/rdev-hq/rdev/client"
	"github.com/rdev-hq/rdev/client/clienttest"
)

// newClient returns a client of f with fast reconnects.
func newClient(t *testing.T, f *clienttest.Server, o client.Options) *client.Client {
	t.Helper()
	if o.Retry == (client.Retry{}) {
		o.Retry = fastRetry(time.Second)
	}
	c, err := client.New(f.URL, clienttest.Key, &o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fastRetry retries at once, and gives up after giveUp.
func fastRetry(giveUp time.Duration) client.Retry {
	return client.Retry{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond, GiveUp: giveUp}
}

// output collects what Tail delivers.
type output struct {
	stdout, stderr strings.Builder
	gaps           []client.Gap
}

func (o *output) opts(afterSeq int) client.TailOptions {
	return client.TailOptions{AfterSeq: afterSeq,
		OnChunk: func(c client.Chunk) error {
			if c.Stream == client.Stderr {
				o.stderr.WriteString(c.Data)
			} else {
				o.stdout.WriteString(c.Data)
			}
			return nil
		},
		OnGap: func(g client.Gap) error { o.gaps = append(o.gaps, g); return nil },
	}
}

func (o *output) want(t *testing.T, from, to int) {
	t.Helper()
	wantOut, wantErr := clienttest.Want(from, to)
	if o.stdout.String() != wantOut || o.stderr.String() != wantErr {
		t.Errorf("stdout %q, stderr %q; want %q and %q", o.stdout.String(), o.stderr.String(), wantOut, wantErr)
	}
}

func TestClient_Tail(t *testing.T) {
	t.Run("ReconnectsWithoutLossOrRepeat", func(t *testing.T) {
		before := runtime.NumGoroutine()
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) {
			switch n {
			case 1:
				s.ExpectAfter(0)
				s.Chunks(1, 3)
				s.Drop()
			case 2:
				s.ExpectAfter(3)
				s.Chunks(2, 5) // 2 and 3 again: an at-least-once resend
				s.CloseWith(websocket.CloseGoingAway, "server restarting")
			case 3:
				s.ExpectAfter(5)
				s.Chunks(6, 8)
				s.Finish("SUCCEEDED", new(0), "", 8)
			default:
				t.Errorf("unexpected connection %d", n)
			}
		}
		var out output
		fin, err := newClient(t, f, client.Options{}).Tail(t.Context(), "cmd1", out.opts(0))
		if err != nil {
			t.Fatal(err)
		}
		out.want(t, 1, 8)
		if fin == nil || fin.ExitStatus() != 0 || fin.LastSeq != 8 {
			t.Errorf("finished = %+v, want SUCCEEDED at seq 8", fin)
		}
		if got := f.Conns(); got != 3 {
			t.Errorf("connections = %d, want 3", got)
		}
		if got := f.Auth(); len(got) == 0 || got[0] != "Bearer "+clienttest.Key {
			t.Errorf("connection_init authorization = %q, want Bearer %s", got, clienttest.Key)
		}
		f.Close()
		waitGoroutines(t, before)
	})

	t.Run("Gap", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) {
			s.Chunks(1, 1)
			s.Gap(1, 4)
			s.Finish("SUCCEEDED", new(0), "", 4)
		}
		var out output
		if _, err := newClient(t, f, client.Options{}).Tail(t.Context(), "cmd1", out.opts(0)); err != nil {
			t.Fatal(err)
		}
		if len(out.gaps) != 1 || out.gaps[0] != (client.Gap{From: 2, To: 3}) {
			t.Errorf("gaps = %v, want [{2 3}]", out.gaps)
		}
	})

	t.Run("StopAt", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) {
			s.Chunks(1, 3)
			s.WaitClosed() // still running: the live stream would go on
		}
		var out output
		o := out.opts(0)
		o.StopAt = 2
		fin, err := newClient(t, f, client.Options{}).Tail(t.Context(), "cmd1", o)
		if err != nil || fin != nil {
			t.Fatalf("Tail = %v, %v; want nil, nil", fin, err)
		}
		out.want(t, 1, 2)
	})

	t.Run("AnswersPings", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) {
			s.Send(map[string]any{"type": "ping"})
			var m struct{ Type string }
			_ = s.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			if err := s.Conn.ReadJSON(&m); err != nil || m.Type != "pong" {
				t.Errorf("after ping got %+v, %v; want pong", m, err)
			}
			s.Chunks(1, 1)
			s.Finish("SUCCEEDED", new(0), "", 1)
		}
		var out output
		if _, err := newClient(t, f, client.Options{}).Tail(t.Context(), "cmd1", out.opts(0)); err != nil {
			t.Fatal(err)
		}
		out.want(t, 1, 1)
	})

	t.Run("ReconnectsAfterSilence", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) {
			switch n {
			case 1:
				s.Chunks(1, 1)
				s.WaitClosed() // half-open: never answers the client's pings
			default:
				s.ExpectAfter(1)
				s.Chunks(2, 2)
				s.Finish("SUCCEEDED", new(0), "", 2)
			}
		}
		c := newClient(t, f, client.Options{KeepAlive: 50 * time.Millisecond})
		var out output
		start := time.Now()
		if _, err := c.Tail(t.Context(), "cmd1", out.opts(0)); err != nil {
			t.Fatal(err)
		}
		out.want(t, 1, 2)
		if f.Conns() != 2 || time.Since(start) > 2*time.Second {
			t.Errorf("%d connections in %s; want 2, soon after 2 keep-alives", f.Conns(), time.Since(start))
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) {
			s.SendError(clienttest.CodeErr("command x not found", "NOT_FOUND"))
			s.WaitClosed()
		}
		var out output
		_, err := newClient(t, f, client.Options{}).Tail(t.Context(), "x", out.opts(0))
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Code != "NOT_FOUND" || err.Error() != "command x not found (NOT_FOUND)" || client.ErrorCode(err) != "NOT_FOUND" {
			t.Errorf("err = %v, want command x not found (NOT_FOUND)", err)
		}
		if f.Conns() != 1 {
			t.Errorf("connections = %d, want 1: a server error is final", f.Conns())
		}
	})

	// A server whose database is down says so in every way it can: an
	// error message ends the subscription, connection_init closes with
	// 1013, a subscription completes early. The client keeps going,
	// resuming after the last seq it delivered, until the command ends.
	t.Run("SurvivesOutage", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) {
			switch n {
			case 1:
				s.Chunks(1, 2)
				s.SendError(clienttest.UnavailableErr(0))
				s.WaitClosed()
			case 2:
				s.CloseWith(1013, "Try Again Later: the database is unavailable")
			case 3:
				s.ExpectAfter(2)
				s.Complete()
				s.WaitClosed()
			default:
				s.ExpectAfter(2)
				s.Chunks(3, 4)
				s.Finish("SUCCEEDED", new(0), "", 4)
			}
		}
		var out output
		fin, err := newClient(t, f, client.Options{}).Tail(t.Context(), "cmd1", out.opts(0))
		if err != nil || fin == nil {
			t.Fatalf("Tail = %v, %v", fin, err)
		}
		out.want(t, 1, 4)
	})

	t.Run("ErrForbiddenClose", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) {
			s.CloseWith(4403, "Forbidden: the API key was revoked")
			s.WaitClosed()
		}
		var out output
		_, err := newClient(t, f, client.Options{}).Tail(t.Context(), "x", out.opts(0))
		var ce *client.CloseError
		if !errors.As(err, &ce) || ce.Code != 4403 || !strings.Contains(err.Error(), "Forbidden: the API key was revoked (4403)") {
			t.Errorf("err = %v, want the close reason", err)
		}
		if f.Conns() != 1 {
			t.Errorf("connections = %d, want 1: 4403 is final", f.Conns())
		}
	})

	t.Run("GivesUp", func(t *testing.T) {
		f := clienttest.NewServer(t) // no script: the server hangs up after connection_init
		c := newClient(t, f, client.Options{Retry: fastRetry(200 * time.Millisecond)})
		start := time.Now()
		var out output
		_, err := c.Tail(t.Context(), "cmd1", out.opts(4))
		if err == nil || !strings.Contains(err.Error(), "lost the connection") || !client.Retryable(err) {
			t.Errorf("err = %v, want a retryable lost the connection", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
			t.Errorf("gave up after %s, want about 200ms", d)
		}
		if f.Conns() < 3 {
			t.Errorf("connections = %d, want several attempts", f.Conns())
		}
	})

	t.Run("StopsOnCancel", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Script = func(n int, s *clienttest.Session) { s.Chunks(1, 1); s.WaitClosed() }
		ctx, cancel := context.WithCancel(t.Context())
		_, err := newClient(t, f, client.Options{}).Tail(ctx, "cmd1", client.TailOptions{
			OnChunk: func(client.Chunk) error { cancel(); return nil }})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

// commandAnswer answers command(id) as RUNNING.
func commandAnswer(string, map[string]any) (any, []clienttest.Err) {
	return map[string]any{"command": map[string]any{"id": "c", "status": "RUNNING"}}, nil
}

func TestClient_Command(t *testing.T) {
	t.Run("RetriesTransportErrors", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.DropPosts = 2
		f.Answer = commandAnswer
		cmd, err := newClient(t, f, client.Options{}).Command(t.Context(), "c")
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Status != client.StatusRunning || len(f.Posts("command")) != 3 {
			t.Errorf("got %+v after %d posts, want RUNNING after 3", cmd, len(f.Posts("command")))
		}
		if p := f.Posts("command")[2]; p.Auth != "Bearer "+clienttest.Key {
			t.Errorf("Authorization = %q", p.Auth)
		}
	})

	// However long the outage, within GiveUp: more 503s than any fixed
	// number of attempts would allow.
	t.Run("RetriesUnavailable", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.UnavailablePosts = 12
		f.Answer = commandAnswer
		if _, err := newClient(t, f, client.Options{}).Command(t.Context(), "c"); err != nil {
			t.Fatal(err)
		}
		if n := len(f.Posts("command")); n != 13 {
			t.Errorf("%d posts, want 13", n)
		}
	})

	t.Run("RetriesRateLimited", func(t *testing.T) {
		f := clienttest.NewServer(t)
		refused := 2
		f.Answer = func(op string, vars map[string]any) (any, []clienttest.Err) {
			if refused > 0 {
				refused--
				return nil, []clienttest.Err{{Message: "rate limit exceeded", Extensions: map[string]any{"code": "RATE_LIMITED", "retryAfterSeconds": 0}}}
			}
			return commandAnswer(op, vars)
		}
		if _, err := newClient(t, f, client.Options{}).Command(t.Context(), "c"); err != nil {
			t.Fatal(err)
		}
		if n := len(f.Posts("command")); n != 3 {
			t.Errorf("%d posts, want 3", n)
		}
	})

	t.Run("GivesUp", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.UnavailablePosts = 1 << 30
		c := newClient(t, f, client.Options{Retry: fastRetry(200 * time.Millisecond)})
		start := time.Now()
		_, err := c.Command(t.Context(), "c")
		if client.ErrorCode(err) != "UNAVAILABLE" || !client.Retryable(err) || !strings.Contains(err.Error(), "the database is unavailable") {
			t.Errorf("err = %v, want the server's UNAVAILABLE", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
			t.Errorf("gave up after %s, want about 200ms", d)
		}
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		f := clienttest.NewServer(t)
		f.Answer = func(string, map[string]any) (any, []clienttest.Err) {
			return nil, clienttest.CodeErr("invalid API key", "UNAUTHENTICATED")
		}
		_, err := newClient(t, f, client.Options{}).Command(t.Context(), "c")
		if err == nil || err.Error() != "invalid API key (UNAUTHENTICATED)" || client.ErrorCode(err) != "UNAUTHENTICATED" {
			t.Errorf("err = %v", err)
		}
		if n := len(f.Posts("command")); n != 1 {
			t.Errorf("%d posts, want 1: a server error is not retried", n)
		}
	})

	// No server at the address: said at once, not after minutes of
	// retries.
	t.Run("ErrUnreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close() // nothing listens there now
		c, err := client.New("http://"+addr, "k", nil)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = c.Command(t.Context(), "c")
		want := "cannot reach rdev at http://" + addr + ": is `rdev serve` running?"
		if !errors.Is(err, client.ErrUnreachable) || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("err = %v, want ErrUnreachable saying %q", err, want)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %s, want at once", d)
		}
		_, err = c.Tail(t.Context(), "c", client.TailOptions{OnChunk: func(client.Chunk) error { return nil }})
		if !errors.Is(err, client.ErrUnreachable) {
			t.Errorf("Tail: err = %v, want ErrUnreachable", err)
		}
	})
}

func TestNew(t *testing.T) {
	for _, u := range []string{"localhost:8080", "ftp://x", "http://", "::"} {
		if _, err := client.New(u, "", nil); err == nil {
			t.Errorf("New(%q) = nil error", u)
		}
	}
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
