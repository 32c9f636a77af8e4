package websocket_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/websocket"
)

// TestTransport_Admit: Admit sees InitFunc's context, a refusal with
// ERATELIMITED closes with 4429 and the reason, and an admitted connection
// frees its place once, when it ends, even when its peer vanishes.
func TestTransport_Admit(t *testing.T) {
	type ctxKey struct{}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			var open, released atomic.Int32
			seen := make(chan any, 10)
			const limit = 1
			srv := newServer(t, websocket.Implementation{}, func(ws *websocket.Transport) {
				ws.InitFunc = func(ctx context.Context, payload transport.InitPayload) (context.Context, error) {
					return context.WithValue(ctx, ctxKey{}, payload.Authorization()), nil
				}
				ws.Admit = func(ctx context.Context) (func(), error) {
					seen <- ctx.Value(ctxKey{})
					if open.Add(1) > limit {
						open.Add(-1)
						return nil, domain.Errorf(domain.ERATELIMITED, "too many open websocket connections")
					}
					return func() { open.Add(-1); released.Add(1) }, nil
				}
			})
			first := dial(t, srv.url, nil, p.name)
			handshake(t, first, p, `{"authorization":"Bearer k"}`)
			if v := <-seen; v != "Bearer k" {
				t.Errorf("Admit saw %v, want InitFunc's context", v)
			}

			over := dial(t, srv.url, nil, p.name)
			send(t, over, msg{Type: "connection_init"})
			if p.name == "graphql-ws" {
				m := read(t, over)
				var payload struct{ Extensions struct{ Code string } }
				if err := json.Unmarshal(m.Payload, &payload); m.Type != "connection_error" || err != nil || payload.Extensions.Code != domain.ERATELIMITED {
					t.Errorf("got %s %s, want a connection_error with code %s", m.Type, m.Payload, domain.ERATELIMITED)
				}
			}
			if ce := readClose(t, over); ce.Code != 4429 || ce.Text != "Too Many Requests: too many open websocket connections" {
				t.Errorf("close %d %q, want 4429 Too Many Requests: …", ce.Code, ce.Text)
			}
			if code := srv.closed(t); code != 4429 {
				t.Errorf("CloseFunc saw %d, want 4429", code)
			}
			if n := released.Load(); n != 0 {
				t.Errorf("a refused connection released %d places", n)
			}

			// The peer vanishes without a close frame: its place is freed.
			_ = first.NetConn().Close()
			srv.closed(t)
			if n := released.Load(); n != 1 {
				t.Fatalf("released %d times after an abnormal close, want 1", n)
			}
			again := dial(t, srv.url, nil, p.name)
			handshake(t, again, p, "")
			<-seen
			<-seen
			if n := open.Load(); n != 1 {
				t.Errorf("open = %d, want 1", n)
			}
		})
	}
}
