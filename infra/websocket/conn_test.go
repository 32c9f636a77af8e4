package websocket_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	gorilla "github.com/gorilla/websocket"

	"github.com/rdev-hq/rdev/infra/websocket"
)

// These tests call Accept directly from an HTTP handler and drive the
// connection the way gqlgen's transport does.

var gqlgenSubprotocols = []string{"graphql-ws", "graphql-transport-ws"}

// serve starts a server whose handler is h and returns its ws:// URL.
func serve(tb testing.TB, h http.HandlerFunc) string {
	tb.Helper()
	hs := httptest.NewServer(h)
	tb.Cleanup(hs.Close)
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

// accepted returns a handler that accepts with impl and options and hands the
// connection to fn; the handler returns when fn does.
func accepted(tb testing.TB, impl websocket.Implementation, options transport.WebsocketAcceptOptions, fn func(transport.WebsocketConn)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := impl.Accept(w, r, options)
		if err != nil {
			tb.Errorf("Accept: %v", err)
			return
		}
		fn(c)
	}
}

func TestImplementation_Accept(t *testing.T) {
	t.Run("ResponseHeader", func(t *testing.T) {
		url := serve(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Request-Id", "rid-1") // as middleware would
			accepted(t, websocket.Implementation{}, transport.WebsocketAcceptOptions{
				ResponseHeader: http.Header{
					"X-Test":                   {"1"},
					"Sec-Websocket-Extensions": {"bogus"}, // owned by the upgrader
				},
				Subprotocols: gqlgenSubprotocols,
			}, func(c transport.WebsocketConn) { _ = c.Close() })(w, r)
		})
		d := gorilla.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: wait}
		c, resp, err := d.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		defer c.Close()
		for k, want := range map[string]string{
			"X-Test":                   "1",
			"X-Request-Id":             "rid-1",
			"Sec-Websocket-Protocol":   "graphql-transport-ws",
			"Sec-Websocket-Extensions": "",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("response header %s = %q, want %q", k, got, want)
			}
		}
	})

	t.Run("Subprotocols", func(t *testing.T) {
		impl := websocket.Implementation{Subprotocols: []string{"custom", "graphql-ws"}}
		negotiated := make(chan string, 1)
		url := serve(t, accepted(t, impl, transport.WebsocketAcceptOptions{Subprotocols: gqlgenSubprotocols},
			func(c transport.WebsocketConn) {
				negotiated <- c.Subprotocol()
				_ = c.Close()
			}))
		for _, tt := range []struct {
			offer []string
			want  string
		}{
			{[]string{"custom"}, "custom"},
			{[]string{"graphql-transport-ws", "custom"}, "graphql-transport-ws"},
			{[]string{"graphql-ws"}, "graphql-ws"},
			{[]string{"unknown"}, ""},
		} {
			c := dial(t, url, nil, tt.offer...)
			if got := c.Subprotocol(); got != tt.want {
				t.Errorf("offered %q: client negotiated %q, want %q", tt.offer, got, tt.want)
			}
			if got := <-negotiated; got != tt.want {
				t.Errorf("offered %q: server negotiated %q, want %q", tt.offer, got, tt.want)
			}
		}
	})

	t.Run("NotAWebSocket", func(t *testing.T) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if _, err := (websocket.Implementation{}).Accept(rec, req, transport.WebsocketAcceptOptions{}); err == nil {
			t.Fatal("Accept of a plain request succeeded")
		}
		if rec.Code != http.StatusBadRequest {
			t.Errorf("status %d, want %d", rec.Code, http.StatusBadRequest)
		}
	})
}

// gqlgen writes from many goroutines while it reads and closes from others;
// under -race this shows the wrapper serializes what gorilla requires.
func TestConn_ConcurrentUse(t *testing.T) {
	const writers, perWriter, fromClient = 8, 50, 20
	type result struct {
		writeErrs []error
		read      int
		readErr   error
	}
	done := make(chan result, 1)
	url := serve(t, accepted(t, websocket.Implementation{}, transport.WebsocketAcceptOptions{Subprotocols: gqlgenSubprotocols},
		func(c transport.WebsocketConn) {
			c.(transport.WebsocketReadLimiter).SetReadLimit(1 << 20)
			var res result
			var mu sync.Mutex
			readDone := make(chan struct{})
			go func() { // the one reader
				defer close(readDone)
				for {
					_, r, err := c.NextReader()
					if err != nil {
						res.readErr = err
						return
					}
					if _, err := io.Copy(io.Discard, r); err != nil {
						res.readErr = err
						return
					}
					res.read++
				}
			}()
			var wg sync.WaitGroup
			var written atomic.Int64
			for g := range writers {
				wg.Go(func() {
					for n := range perWriter {
						if err := c.WriteJSON(map[string]int{"g": g, "n": n}); err != nil {
							mu.Lock()
							res.writeErrs = append(res.writeErrs, err)
							mu.Unlock()
						}
						written.Add(1)
					}
				})
			}
			wg.Go(func() { // the closer, racing the writers
				for written.Load() < writers*perWriter/2 {
					time.Sleep(time.Millisecond)
				}
				_ = c.(transport.WebsocketReadDeadliner).SetReadDeadline(time.Now().Add(wait))
				_ = c.WriteClose(gorilla.CloseNormalClosure, "bye")
				_ = c.WriteClose(gorilla.CloseGoingAway, "again") // no second close frame
				_ = c.Close()
				_ = c.Close()
			})
			wg.Wait()
			<-readDone
			done <- res
		}))

	c := dial(t, url, nil, "graphql-transport-ws")
	for i := range fromClient {
		send(t, c, msg{Type: "ping", ID: fmt.Sprint(i)})
	}
	last := map[int]int{}
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		_, data, err := c.ReadMessage()
		if err != nil {
			var ce *gorilla.CloseError
			if !errors.As(err, &ce) || ce.Code != gorilla.CloseNormalClosure || ce.Text != "bye" {
				t.Errorf("connection ended with %v, want close 1000 bye", err)
			}
			break
		}
		var m struct{ G, N int }
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("garbled message %q: %v", data, err)
		}
		if prev, ok := last[m.G]; ok && m.N <= prev {
			t.Errorf("writer %d: message %d after %d", m.G, m.N, prev)
		}
		last[m.G] = m.N
	}
	_ = c.Close()

	res := <-done
	if len(res.writeErrs) != 0 {
		t.Errorf("writes failed: %v", res.writeErrs)
	}
	if res.read != fromClient {
		t.Errorf("server read %d messages, want %d", res.read, fromClient)
	}
	if !errors.Is(res.readErr, transport.ErrWebsocketClosed) && !errors.Is(res.readErr, net.ErrClosed) {
		t.Errorf("reader ended with %v, want ErrWebsocketClosed or net.ErrClosed", res.readErr)
	}
}

// fillUntilBlocked writes big messages from a goroutine until a write blocks
// on a peer that does not read, and returns a function that stops the writer
// and waits for it, returning the first write error.
func fillUntilBlocked(tb testing.TB, c transport.WebsocketConn) (stop func() error) {
	tb.Helper()
	big := strings.Repeat("x", 1<<20)
	var progress atomic.Int64
	var stopped atomic.Bool
	errc := make(chan error, 1)
	go func() {
		for !stopped.Load() {
			if err := c.WriteJSON(big); err != nil {
				errc <- err
				return
			}
			progress.Add(1)
		}
		errc <- nil
	}()
	deadline := time.Now().Add(10 * time.Second)
	for last, still := int64(-1), 0; still < 3; {
		if time.Now().After(deadline) {
			tb.Fatal("writes never blocked")
		}
		time.Sleep(100 * time.Millisecond)
		if p := progress.Load(); p == last && p > 0 {
			still++
		} else {
			last, still = p, 0
		}
	}
	return func() error {
		stopped.Store(true)
		select {
		case err := <-errc:
			return err
		case <-time.After(wait):
			tb.Fatal("blocked writer never returned")
			return nil
		}
	}
}

// A peer that stops reading must not make closing wait on it.
func TestConn_WriteCloseSlowPeer(t *testing.T) {
	type result struct {
		closeTook time.Duration
		writeErr  error
	}
	done := make(chan result, 1)
	url := serve(t, accepted(t, websocket.Implementation{WriteTimeout: -1}, transport.WebsocketAcceptOptions{},
		func(c transport.WebsocketConn) {
			stop := fillUntilBlocked(t, c)
			start := time.Now()
			_ = c.WriteClose(gorilla.CloseNormalClosure, "bye")
			took := time.Since(start)
			_ = c.Close()
			done <- result{took, stop()}
		}))
	c := dial(t, url, nil) // and never read
	res := <-done
	t.Logf("WriteClose took %v", res.closeTook)
	if res.closeTook > 3*time.Second {
		t.Errorf("WriteClose blocked %v behind a stuck writer", res.closeTook)
	}
	if res.writeErr != nil {
		t.Errorf("blocked write after Close = %v, want nil (dropped while closing)", res.writeErr)
	}
	_ = c.Close()
}

// WriteTimeout disconnects a peer that does not take messages, and the
// transport's reader learns of it.
func TestConn_WriteTimeout(t *testing.T) {
	type result struct{ writeErr, readErr error }
	done := make(chan result, 1)
	url := serve(t, accepted(t, websocket.Implementation{WriteTimeout: 200 * time.Millisecond}, transport.WebsocketAcceptOptions{},
		func(c transport.WebsocketConn) {
			readErr := make(chan error, 1)
			go func() {
				_, _, err := c.NextReader()
				readErr <- err
			}()
			big := strings.Repeat("x", 1<<20)
			var res result
			for res.writeErr == nil {
				res.writeErr = c.WriteJSON(big)
			}
			select {
			case res.readErr = <-readErr:
			case <-time.After(wait):
				res.readErr = errors.New("reader still blocked")
			}
			done <- res
		}))
	c := dial(t, url, nil) // and never read
	defer c.Close()
	var res result
	select {
	case res = <-done:
	case <-time.After(3 * wait):
		t.Fatal("writes never timed out")
	}
	var ne net.Error
	if !errors.As(res.writeErr, &ne) || !ne.Timeout() {
		t.Errorf("write error %v, want a timeout", res.writeErr)
	}
	if !errors.Is(res.readErr, net.ErrClosed) {
		t.Errorf("reader ended with %v, want net.ErrClosed", res.readErr)
	}
}

// A handler that returns without closing the connection does not leak it.
func TestConn_Abandoned(t *testing.T) {
	url := serve(t, accepted(t, websocket.Implementation{}, transport.WebsocketAcceptOptions{},
		func(transport.WebsocketConn) {}))
	c := dial(t, url, nil)
	if ce := readClose(t, c); ce.Code != gorilla.CloseInternalServerErr {
		t.Errorf("close %d, want %d", ce.Code, gorilla.CloseInternalServerErr)
	}
}

// Closing on this side ends a blocked read with net.ErrClosed, which the
// transport does not report as a failure.
func TestConn_CloseEndsRead(t *testing.T) {
	readErr := make(chan error, 1)
	url := serve(t, accepted(t, websocket.Implementation{}, transport.WebsocketAcceptOptions{},
		func(c transport.WebsocketConn) {
			go func() {
				_, _, err := c.NextReader()
				readErr <- err
			}()
			time.Sleep(50 * time.Millisecond) // let the read block; either order must work
			_ = c.Close()
		}))
	c := dial(t, url, nil)
	defer c.Close()
	select {
	case err := <-readErr:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("read ended with %v, want net.ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("read did not end")
	}
}
