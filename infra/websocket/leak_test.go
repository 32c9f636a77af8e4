package websocket_test

import (
	"encoding/json"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/rdev-hq/rdev/infra/websocket"
)

// TestImplementation_NoGoroutineLeak opens many connections, each with a live
// subscription, closes them in every way a client can, and checks that the
// server's goroutines come back down to where they started.
func TestImplementation_NoGoroutineLeak(t *testing.T) {
	srv := newServer(t, websocket.Implementation{}, nil)
	baseline := runtime.NumGoroutine()

	const n = 100
	conns := make([]*gorilla.Conn, n)
	for i := range conns {
		p := protocols[i%len(protocols)]
		c := dial(t, srv.url, nil, p.name)
		handshake(t, c, p, `{"authorization":"Bearer x"}`)
		send(t, c, msg{Type: p.subscribe, ID: "s", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
		conns[i] = c
	}
	// Each connection holds at least its reader and its subscription.
	if got := runtime.NumGoroutine(); got < baseline+2*n {
		t.Fatalf("%d goroutines with %d connections open, baseline %d: the check below would prove nothing", got, n, baseline)
	}

	for i, c := range conns {
		switch i % 4 {
		case 0: // close handshake
			_ = c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""), time.Now().Add(wait))
			_ = readClose(t, c)
			_ = c.Close()
		case 1: // going away, without waiting for the reply
			_ = c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseGoingAway, ""), time.Now().Add(wait))
			_ = c.Close()
		case 2: // vanish
			_ = c.NetConn().Close()
		case 3: // a last message, then vanish
			if c.Subprotocol() == "graphql-ws" {
				send(t, c, msg{Type: "connection_terminate"})
			} else {
				send(t, c, msg{Type: "ping"})
			}
			_ = c.Close()
		}
	}

	for i := range n {
		select {
		case <-srv.closes:
		case <-time.After(wait):
			t.Fatalf("only %d of %d connections closed on the server", i, n)
		}
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		got := runtime.NumGoroutine()
		if got <= baseline+2 {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Fatalf("%d goroutines, baseline %d:\n%s", got, baseline, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
