package websocket_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	gorilla "github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/websocket"
)

// These tests mount gqlgen's executable test schema with Transport in a real
// HTTP server, and drive it with a real gorilla client.

// wait bounds every wait for the server; tests do not depend on it being
// fast, only on it answering at all.
const wait = 5 * time.Second

// msg is a message of either GraphQL WebSocket protocol.
type msg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// protocol names the message types of one subprotocol.
type protocol struct {
	name      string
	subscribe string // client: start an operation
	stop      string // client: stop an operation
	next      string // server: a result
	keepAlive bool   // server sends "ka" right after connection_ack
}

// keepAlive is the message type of the server's periodic keep-alive.
func (p protocol) keepAliveType() string {
	if p.keepAlive {
		return "ka"
	}
	return "ping"
}

var protocols = []protocol{
	{name: "graphql-transport-ws", subscribe: "subscribe", stop: "complete", next: "next"},
	{name: "graphql-ws", subscribe: "start", stop: "stop", next: "data", keepAlive: true},
}

// server is a test GraphQL server whose transport reports to channels.
type server struct {
	*testserver.TestServer
	url    string     // ws:// URL
	errs   chan error // from ErrorFunc
	closes chan int   // from CloseFunc
}

// newServer starts a server whose transport accepts with impl; configure may
// adjust the transport.
func newServer(tb testing.TB, impl websocket.Implementation, configure func(*websocket.Transport)) *server {
	tb.Helper()
	s := &server{
		TestServer: testserver.New(),
		errs:       make(chan error, 1000),
		closes:     make(chan int, 1000),
	}
	ws := websocket.Transport{
		Upgrade: impl,
		ErrorFunc: func(_ context.Context, err error) {
			select {
			case s.errs <- err:
			default:
			}
		},
		CloseFunc: func(_ context.Context, code int) {
			select {
			case s.closes <- code:
			default:
			}
		},
	}
	if configure != nil {
		configure(&ws)
	}
	s.AddTransport(ws)
	hs := httptest.NewServer(s)
	tb.Cleanup(hs.Close)
	s.url = "ws" + strings.TrimPrefix(hs.URL, "http")
	return s
}

// dial opens a client connection offering subprotocols, or fails the test.
func dial(tb testing.TB, url string, header http.Header, subprotocols ...string) *gorilla.Conn {
	tb.Helper()
	c, err := tryDial(url, header, subprotocols...)
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	tb.Cleanup(func() {
		// A normal close, so that the server has no error to report.
		_ = c.WriteControl(gorilla.CloseMessage, gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, ""), time.Now().Add(wait))
		_ = c.Close()
	})
	return c
}

// tryDial opens a client connection; on a refused handshake the error
// carries the HTTP status.
func tryDial(url string, header http.Header, subprotocols ...string) (*gorilla.Conn, error) {
	d := gorilla.Dialer{Subprotocols: subprotocols, HandshakeTimeout: wait}
	c, resp, err := d.Dial(url, header)
	if resp != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, &statusError{resp.StatusCode}
		}
		return nil, err
	}
	return c, nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return http.StatusText(e.code) }

func send(tb testing.TB, c *gorilla.Conn, m msg) {
	tb.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(wait))
	if err := c.WriteJSON(m); err != nil {
		tb.Fatalf("send %s: %v", m.Type, err)
	}
}

func read(tb testing.TB, c *gorilla.Conn) msg {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	var m msg
	if err := c.ReadJSON(&m); err != nil {
		tb.Fatalf("read: %v", err)
	}
	return m
}

// expect reads one message and checks its type, id and (if not "") payload.
func expect(tb testing.TB, c *gorilla.Conn, typ, id, payload string) msg {
	tb.Helper()
	m := read(tb, c)
	if m.Type != typ || m.ID != id {
		tb.Fatalf("got %s id=%q payload=%s; want %s id=%q", m.Type, m.ID, m.Payload, typ, id)
	}
	if payload != "" && !jsonEqual(m.Payload, payload) {
		tb.Fatalf("%s payload = %s, want %s", typ, m.Payload, payload)
	}
	return m
}

// readClose reads until the connection ends and returns the close error, or
// fails the test if the connection ended without a close frame.
func readClose(tb testing.TB, c *gorilla.Conn) *gorilla.CloseError {
	tb.Helper()
	_ = c.SetReadDeadline(time.Now().Add(wait))
	for {
		_, data, err := c.ReadMessage()
		if err == nil {
			tb.Logf("before close: %s", data)
			continue
		}
		var ce *gorilla.CloseError
		if !errors.As(err, &ce) {
			tb.Fatalf("connection ended with %v, want a close frame", err)
		}
		return ce
	}
}

func jsonEqual(a json.RawMessage, b string) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal([]byte(b), &y) == nil &&
		mustMarshal(x) == mustMarshal(y)
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// handshake sends connection_init with payload and reads the ack.
func handshake(tb testing.TB, c *gorilla.Conn, p protocol, payload string) msg {
	tb.Helper()
	m := msg{Type: "connection_init"}
	if payload != "" {
		m.Payload = json.RawMessage(payload)
	}
	send(tb, c, m)
	ack := expect(tb, c, "connection_ack", "", "")
	if p.keepAlive {
		expect(tb, c, "ka", "", "")
	}
	return ack
}

// noErrors fails the test if the transport reported an error.
func (s *server) noErrors(tb testing.TB) {
	tb.Helper()
	select {
	case err := <-s.errs:
		tb.Errorf("transport reported %v", err)
	default:
	}
}

// closed waits for the transport to report the connection closed.
func (s *server) closed(tb testing.TB) int {
	tb.Helper()
	select {
	case code := <-s.closes:
		return code
	case <-time.After(wait):
		tb.Fatal("transport did not close the connection")
		return 0
	}
}

func TestTransport_Protocols(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			srv := newServer(t, websocket.Implementation{}, nil)

			t.Run("Subprotocol", func(t *testing.T) {
				c := dial(t, srv.url, nil, p.name)
				if got := c.Subprotocol(); got != p.name {
					t.Errorf("negotiated %q, want %q", got, p.name)
				}
			})

			t.Run("Subscription", func(t *testing.T) {
				c := dial(t, srv.url, nil, p.name)
				handshake(t, c, p, "")
				send(t, c, msg{Type: p.subscribe, ID: "s1", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
				for range 2 {
					srv.SendNextSubscriptionMessage()
					expect(t, c, p.next, "s1", `{"data":{"name":"test"}}`)
				}
				srv.SendCompleteSubscriptionMessage()
				expect(t, c, "complete", "s1", "")
				srv.noErrors(t)
			})

			t.Run("Stop", func(t *testing.T) {
				c := dial(t, srv.url, nil, p.name)
				handshake(t, c, p, "")
				send(t, c, msg{Type: p.subscribe, ID: "s2", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
				srv.SendNextSubscriptionMessage()
				expect(t, c, p.next, "s2", `{"data":{"name":"test"}}`)
				send(t, c, msg{Type: p.stop, ID: "s2"})
				if p.name == "graphql-ws" {
					expect(t, c, "complete", "s2", "")
					return
				}
				// graphql-transport-ws: nothing more for an operation the
				// client completed.
				send(t, c, msg{Type: "ping"})
				expect(t, c, "pong", "", "")
			})

			t.Run("Query", func(t *testing.T) {
				c := dial(t, srv.url, nil, p.name)
				handshake(t, c, p, "")
				send(t, c, msg{Type: p.subscribe, ID: "q1", Payload: json.RawMessage(`{"query":"{ name }"}`)})
				expect(t, c, p.next, "q1", `{"data":{"name":"test"}}`)
				expect(t, c, "complete", "q1", "")
			})

			t.Run("QueryError", func(t *testing.T) {
				c := dial(t, srv.url, nil, p.name)
				handshake(t, c, p, "")
				send(t, c, msg{Type: p.subscribe, ID: "q2", Payload: json.RawMessage(`{"query":"{ nope }"}`)})
				m := read(t, c)
				if m.ID != "q2" || !strings.Contains(string(m.Payload), "nope") {
					t.Errorf("got %s %s, want a validation error for q2", m.Type, m.Payload)
				}
			})
		})
	}
}

func TestTransport_SubprotocolPreference(t *testing.T) {
	srv := newServer(t, websocket.Implementation{}, nil)
	for _, tt := range []struct {
		offer []string
		want  string
	}{
		{[]string{"graphql-transport-ws", "graphql-ws"}, "graphql-transport-ws"},
		{[]string{"graphql-ws", "graphql-transport-ws"}, "graphql-ws"},
		{[]string{"other", "graphql-ws"}, "graphql-ws"},
		{[]string{"other"}, ""},
		{nil, ""},
	} {
		c := dial(t, srv.url, nil, tt.offer...)
		if got := c.Subprotocol(); got != tt.want {
			t.Errorf("offered %q: negotiated %q, want %q", tt.offer, got, tt.want)
		}
		// Without a subprotocol gqlgen falls back to graphql-ws.
		if tt.want == "" {
			handshake(t, c, protocols[1], "")
		}
	}
}

func TestTransport_Ping(t *testing.T) {
	srv := newServer(t, websocket.Implementation{}, nil)
	c := dial(t, srv.url, nil, "graphql-transport-ws")
	handshake(t, c, protocols[0], "")
	send(t, c, msg{Type: "ping"})
	expect(t, c, "pong", "", "")
	send(t, c, msg{Type: "ping", Payload: json.RawMessage(`{"n":1}`)})
	expect(t, c, "pong", "", `{"n":1}`)
	srv.noErrors(t)
}

func TestTransport_ClientClose(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			for _, tt := range []struct {
				name    string
				payload []byte
				echo    int
				normal  bool // no error reported to ErrorFunc
			}{
				{"NormalClosure", gorilla.FormatCloseMessage(gorilla.CloseNormalClosure, "bye"), gorilla.CloseNormalClosure, true},
				{"GoingAway", gorilla.FormatCloseMessage(gorilla.CloseGoingAway, ""), gorilla.CloseGoingAway, true},
				{"NoStatus", []byte{}, gorilla.CloseNoStatusReceived, true},
				{"ApplicationCode", gorilla.FormatCloseMessage(4000, "app"), 4000, false},
			} {
				t.Run(tt.name, func(t *testing.T) {
					srv := newServer(t, websocket.Implementation{}, nil)
					c := dial(t, srv.url, nil, p.name)
					handshake(t, c, p, "")
					// An active subscription must end with the connection.
					send(t, c, msg{Type: p.subscribe, ID: "s", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
					if err := c.WriteControl(gorilla.CloseMessage, tt.payload, time.Now().Add(wait)); err != nil {
						t.Fatal(err)
					}
					if ce := readClose(t, c); ce.Code != tt.echo {
						t.Errorf("server echoed close %d, want %d", ce.Code, tt.echo)
					}
					srv.closed(t)
					if tt.normal {
						srv.noErrors(t)
						return
					}
					select {
					case err := <-srv.errs:
						var ce *gorilla.CloseError
						if !errors.As(err, &ce) || ce.Code != 4000 {
							t.Errorf("transport reported %v, want close 4000", err)
						}
					default:
						t.Error("transport reported no error for close 4000")
					}
				})
			}

			t.Run("Abrupt", func(t *testing.T) {
				srv := newServer(t, websocket.Implementation{}, nil)
				c := dial(t, srv.url, nil, p.name)
				handshake(t, c, p, "")
				_ = c.NetConn().Close()
				srv.closed(t)
			})
		})
	}

	t.Run("Terminate", func(t *testing.T) {
		srv := newServer(t, websocket.Implementation{}, nil)
		c := dial(t, srv.url, nil, "graphql-ws")
		handshake(t, c, protocols[1], "")
		send(t, c, msg{Type: "connection_terminate"})
		if ce := readClose(t, c); ce.Code != gorilla.CloseNormalClosure {
			t.Errorf("close %d, want %d", ce.Code, gorilla.CloseNormalClosure)
		}
		srv.closed(t)
		srv.noErrors(t)
	})
}

func TestTransport_ReadLimit(t *testing.T) {
	limit := int64(1024)
	limited := func(ws *websocket.Transport) { ws.ReadLimit = limit }
	// A ping whose payload makes the message about size bytes long.
	ping := func(size int) msg {
		return msg{Type: "ping", Payload: json.RawMessage(`{"pad":"` + strings.Repeat(" ", size) + `"}`)}
	}

	t.Run("UnderLimit", func(t *testing.T) {
		srv := newServer(t, websocket.Implementation{}, limited)
		c := dial(t, srv.url, nil, "graphql-transport-ws")
		handshake(t, c, protocols[0], "")
		send(t, c, ping(900))
		expect(t, c, "pong", "", "")
	})

	t.Run("OverLimit", func(t *testing.T) {
		srv := newServer(t, websocket.Implementation{}, limited)
		c := dial(t, srv.url, nil, "graphql-transport-ws")
		handshake(t, c, protocols[0], "")
		send(t, c, ping(4096))
		if ce := readClose(t, c); ce.Code != gorilla.CloseMessageTooBig {
			t.Errorf("close %d, want %d", ce.Code, gorilla.CloseMessageTooBig)
		}
		srv.closed(t)
	})

	t.Run("BeforeInit", func(t *testing.T) {
		srv := newServer(t, websocket.Implementation{}, limited)
		c := dial(t, srv.url, nil, "graphql-ws")
		send(t, c, msg{Type: "connection_init", Payload: json.RawMessage(`{"pad":"` + strings.Repeat("x", 4096) + `"}`)})
		if ce := readClose(t, c); ce.Code != gorilla.CloseMessageTooBig {
			t.Errorf("close %d, want %d", ce.Code, gorilla.CloseMessageTooBig)
		}
	})

	// With compression the frame on the wire is tiny; the limit must still
	// apply to the message as read.
	t.Run("Compressed", func(t *testing.T) {
		srv := newServer(t, websocket.Implementation{EnableCompression: true}, limited)
		d := gorilla.Dialer{Subprotocols: []string{"graphql-transport-ws"}, EnableCompression: true, HandshakeTimeout: wait}
		c, resp, err := d.Dial(srv.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		defer c.Close()
		if ext := resp.Header.Get("Sec-Websocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
			t.Fatalf("compression not negotiated: %q", ext)
		}
		handshake(t, c, protocols[0], "")
		send(t, c, ping(900))
		expect(t, c, "pong", "", "")
		send(t, c, ping(64<<10))
		if ce := readClose(t, c); ce.Code != gorilla.CloseMessageTooBig {
			t.Errorf("close %d, want %d", ce.Code, gorilla.CloseMessageTooBig)
		}
	})
}

func TestTransport_Origin(t *testing.T) {
	allowed := newServer(t, websocket.Implementation{
		CheckOrigin: websocket.OriginChecker([]string{"https://app.example.com"}),
	}, nil)
	def := newServer(t, websocket.Implementation{}, nil)
	host := strings.TrimPrefix(allowed.url, "ws://")
	defHost := strings.TrimPrefix(def.url, "ws://")

	for _, tt := range []struct {
		name   string
		srv    *server
		origin string // "" sends none
		status int    // 0: accepted
	}{
		{"NoOrigin", allowed, "", 0},
		{"Allowed", allowed, "https://app.example.com", 0},
		{"AllowedCase", allowed, "HTTPS://App.Example.COM", 0},
		{"SameOrigin", allowed, "http://" + host, 0},
		{"Forbidden", allowed, "https://evil.example.com", http.StatusForbidden},
		{"ForbiddenScheme", allowed, "http://app.example.com", http.StatusForbidden},
		{"ForbiddenNull", allowed, "null", http.StatusForbidden},
		{"DefaultNoOrigin", def, "", 0},
		{"DefaultSameOrigin", def, "http://" + defHost, 0},
		{"DefaultForbidden", def, "https://app.example.com", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.origin != "" {
				h.Set("Origin", tt.origin)
			}
			c, err := tryDial(tt.srv.url, h, "graphql-transport-ws")
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				defer c.Close()
				handshake(t, c, protocols[0], "")
				return
			}
			var se *statusError
			if !errors.As(err, &se) || se.code != tt.status {
				if c != nil {
					_ = c.Close()
				}
				t.Fatalf("dial = %v, want HTTP %d", err, tt.status)
			}
		})
	}
}

func TestTransport_InitFunc(t *testing.T) {
	type ctxKey struct{}
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			t.Run("SeesPayload", func(t *testing.T) {
				got := make(chan transport.InitPayload, 1)
				srv := newServer(t, websocket.Implementation{}, func(ws *websocket.Transport) {
					ws.InitFunc = func(ctx context.Context, payload transport.InitPayload) (context.Context, error) {
						got <- payload
						return context.WithValue(ctx, ctxKey{}, payload.Authorization()), nil
					}
				})
				c := dial(t, srv.url, nil, p.name)
				handshake(t, c, p, `{"authorization":"Bearer rdev_x_y","extra":1}`)
				payload := <-got
				if a := payload.Authorization(); a != "Bearer rdev_x_y" {
					t.Errorf("InitFunc saw authorization %q", a)
				}
				if payload["extra"] != float64(1) {
					t.Errorf("InitFunc saw payload %v", payload)
				}
			})

			t.Run("Rejects", func(t *testing.T) {
				srv := newServer(t, websocket.Implementation{}, func(ws *websocket.Transport) {
					ws.InitFunc = func(ctx context.Context, _ transport.InitPayload) (context.Context, error) {
						return ctx, errors.New("the API key was revoked")
					}
				})
				c := dial(t, srv.url, nil, p.name)
				send(t, c, msg{Type: "connection_init", Payload: json.RawMessage(`{"authorization":"Bearer bad"}`)})
				ce := readClose(t, c)
				if ce.Code != 4403 || ce.Text != "Forbidden: the API key was revoked" {
					t.Errorf("close %d %q, want 4403 Forbidden: the API key was revoked", ce.Code, ce.Text)
				}
				if code := srv.closed(t); code != 4403 {
					t.Errorf("CloseFunc saw %d, want 4403", code)
				}
			})

			t.Run("RejectsWithDomainError", func(t *testing.T) {
				srv := newServer(t, websocket.Implementation{}, func(ws *websocket.Transport) {
					ws.InitFunc = func(ctx context.Context, _ transport.InitPayload) (context.Context, error) {
						return ctx, domain.Errorf(domain.EUNAUTHENTICATED, "invalid API key")
					}
				})
				c := dial(t, srv.url, nil, p.name)
				send(t, c, msg{Type: "connection_init"})
				if ce := readClose(t, c); ce.Code != 4403 || ce.Text != "Forbidden: invalid API key" {
					t.Errorf("close %d %q, want 4403 Forbidden: invalid API key", ce.Code, ce.Text)
				}
			})

			// A connection that cannot be checked because storage is down
			// closes with 1013, which clients retry, never with 4403.
			t.Run("Unavailable", func(t *testing.T) {
				srv := newServer(t, websocket.Implementation{}, func(ws *websocket.Transport) {
					ws.InitFunc = func(ctx context.Context, _ transport.InitPayload) (context.Context, error) {
						return ctx, domain.Errorf(domain.EUNAVAILABLE, "the database is unavailable")
					}
				})
				c := dial(t, srv.url, nil, p.name)
				send(t, c, msg{Type: "connection_init"})
				if p.name == "graphql-ws" {
					m := read(t, c)
					var payload struct {
						Message    string
						Extensions struct{ Code string }
					}
					if err := json.Unmarshal(m.Payload, &payload); m.Type != "connection_error" || err != nil ||
						payload.Message != "the database is unavailable" || payload.Extensions.Code != "UNAVAILABLE" {
						t.Errorf("got %s %s, want a connection_error with code UNAVAILABLE", m.Type, m.Payload)
					}
				}
				if ce := readClose(t, c); ce.Code != 1013 || ce.Text != "Try Again Later: the database is unavailable" {
					t.Errorf("close %d %q, want 1013 Try Again Later: the database is unavailable", ce.Code, ce.Text)
				}
				if code := srv.closed(t); code != 1013 {
					t.Errorf("CloseFunc saw %d, want 1013", code)
				}
			})
		})
	}
}

// Protocol violations close the connection with graphql-transport-ws' codes.
func TestTransport_ProtocolErrors(t *testing.T) {
	sub := json.RawMessage(`{"query":"subscription { name }"}`)
	for _, tt := range []struct {
		name     string
		protocol string
		msgs     []msg // after the handshake, unless init is false
		init     bool
		code     int
	}{
		{"SubscribeBeforeInit", "graphql-transport-ws", []msg{{Type: "subscribe", ID: "1", Payload: sub}}, false, 4401},
		{"UnknownTypeBeforeInit", "graphql-transport-ws", []msg{{Type: "hello"}}, false, 4400},
		{"UnknownTypeBeforeInitLegacy", "graphql-ws", []msg{{Type: "hello"}}, false, 4400},
		{"InitPayloadNotAnObject", "graphql-transport-ws", []msg{{Type: "connection_init", Payload: json.RawMessage(`[1]`)}}, false, 4400},
		{"SecondInit", "graphql-transport-ws", []msg{{Type: "connection_init"}}, true, 4429},
		{"DuplicateID", "graphql-transport-ws", []msg{{Type: "subscribe", ID: "1", Payload: sub}, {Type: "subscribe", ID: "1", Payload: sub}}, true, 4409},
		{"SubscribeWithoutID", "graphql-transport-ws", []msg{{Type: "subscribe", Payload: sub}}, true, 4400},
		{"SubscribeWithoutQuery", "graphql-transport-ws", []msg{{Type: "subscribe", ID: "1", Payload: json.RawMessage(`{"variables":{}}`)}}, true, 4400},
		{"UnknownType", "graphql-transport-ws", []msg{{Type: "hello"}}, true, 4400},
		{"UnknownTypeLegacy", "graphql-ws", []msg{{Type: "hello"}}, true, 4400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, websocket.Implementation{}, nil)
			c := dial(t, srv.url, nil, tt.protocol)
			if tt.init {
				handshake(t, c, protocolNamed(tt.protocol), "")
			}
			for _, m := range tt.msgs {
				send(t, c, m)
			}
			if ce := readClose(t, c); ce.Code != tt.code {
				t.Errorf("close %d %q, want %d", ce.Code, ce.Text, tt.code)
			}
			if code := srv.closed(t); code != tt.code {
				t.Errorf("CloseFunc saw %d, want %d", code, tt.code)
			}
		})
	}

	t.Run("NotJSON", func(t *testing.T) {
		srv := newServer(t, websocket.Implementation{}, nil)
		c := dial(t, srv.url, nil, "graphql-transport-ws")
		_ = c.WriteMessage(gorilla.TextMessage, []byte("{not json"))
		if ce := readClose(t, c); ce.Code != 4400 {
			t.Errorf("close %d, want 4400", ce.Code)
		}
	})

	t.Run("BinaryFrame", func(t *testing.T) {
		srv := newServer(t, websocket.Implementation{}, nil)
		c := dial(t, srv.url, nil, "graphql-transport-ws")
		_ = c.WriteMessage(gorilla.BinaryMessage, []byte(`{"type":"connection_init"}`))
		if ce := readClose(t, c); ce.Code != 4400 || !strings.Contains(ce.Text, "binary") {
			t.Errorf("close %d %q, want 4400 about binary frames", ce.Code, ce.Text)
		}
	})

	t.Run("InitTimeout", func(t *testing.T) {
		srv := newServer(t, websocket.Implementation{}, func(ws *websocket.Transport) { ws.InitTimeout = 100 * time.Millisecond })
		c := dial(t, srv.url, nil, "graphql-transport-ws")
		if ce := readClose(t, c); ce.Code != 4408 {
			t.Errorf("close %d %q, want 4408", ce.Code, ce.Text)
		}
	})

	// Legacy clients learn why in a connection_error before the close.
	t.Run("LegacyConnectionError", func(t *testing.T) {
		srv := newServer(t, websocket.Implementation{}, nil)
		c := dial(t, srv.url, nil, "graphql-ws")
		send(t, c, msg{Type: "hello"})
		m := read(t, c)
		if m.Type != "connection_error" || !strings.Contains(string(m.Payload), "hello") {
			t.Errorf("got %s %s, want a connection_error naming the message", m.Type, m.Payload)
		}
	})
}

func protocolNamed(name string) protocol {
	for _, p := range protocols {
		if p.name == name {
			return p
		}
	}
	panic(name)
}

// A client that answers nothing, not even ping frames, is disconnected after
// two keep-alive intervals; one that answers stays.
func TestTransport_KeepAliveDeadline(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			srv := newServer(t, websocket.Implementation{}, func(ws *websocket.Transport) {
				ws.KeepAlive = 200 * time.Millisecond
			})
			c := dial(t, srv.url, nil, p.name)
			handshake(t, c, p, "")

			// Reading answers ping frames (gorilla's default handler), so
			// this outlives the deadline of two intervals.
			for range 4 {
				expect(t, c, p.keepAliveType(), "", "")
			}
			// Silence closes it.
			c.SetPingHandler(func(string) error { return nil })
			_ = c.SetReadDeadline(time.Now().Add(wait))
			for {
				var m msg
				if err := c.ReadJSON(&m); err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatal("server did not close a connection that stopped answering pings")
					}
					break
				}
				if m.Type != p.keepAliveType() {
					t.Fatalf("unexpected %s", m.Type)
				}
			}
			srv.closed(t)
			select {
			case err := <-srv.errs:
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("transport reported %v, want a read timeout", err)
				}
			default:
				t.Error("transport reported no read timeout")
			}
		})
	}
}

// Cancelling the request's context, as the server does when it shuts down,
// closes the connection with 1001 so clients reconnect elsewhere.
func TestTransport_ServerShutdown(t *testing.T) {
	ts := testserver.New()
	ts.AddTransport(websocket.Transport{})
	ctx, cancel := context.WithCancel(context.Background())
	hs := httptest.NewUnstartedServer(ts)
	hs.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	hs.Start()
	defer hs.Close()
	c := dial(t, "ws"+strings.TrimPrefix(hs.URL, "http"), nil, "graphql-transport-ws")
	handshake(t, c, protocols[0], "")
	send(t, c, msg{Type: "subscribe", ID: "s", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
	cancel()
	if ce := readClose(t, c); ce.Code != gorilla.CloseGoingAway {
		t.Errorf("close %d, want %d", ce.Code, gorilla.CloseGoingAway)
	}
}

// The legacy protocol replaces an operation started again with the same id:
// the new one runs, and no "complete" of the old one can end it for the
// client.
func TestTransport_LegacyReplacesOperation(t *testing.T) {
	srv := newServer(t, websocket.Implementation{}, nil)
	c := dial(t, srv.url, nil, "graphql-ws")
	handshake(t, c, protocols[1], "")
	sub := json.RawMessage(`{"query":"subscription { name }"}`)
	send(t, c, msg{Type: "start", ID: "s", Payload: sub})
	send(t, c, msg{Type: "start", ID: "s", Payload: sub})
	send(t, c, msg{Type: "start", ID: "q", Payload: json.RawMessage(`{"query":"{ name }"}`)})
	// The query's two messages come after both starts were handled.
	expect(t, c, "data", "q", `{"data":{"name":"test"}}`)
	expect(t, c, "complete", "q", "")
	srv.SendNextSubscriptionMessage()
	expect(t, c, "data", "s", `{"data":{"name":"test"}}`)
}

func TestTransport_MaxOperations(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			srv := newServer(t, websocket.Implementation{}, func(tr *websocket.Transport) { tr.MaxOperations = 2 })
			c := dial(t, srv.url, nil, p.name)
			handshake(t, c, p, "")
			sub := json.RawMessage(`{"query":"subscription { name }"}`)
			send(t, c, msg{Type: p.subscribe, ID: "1", Payload: sub})
			send(t, c, msg{Type: p.subscribe, ID: "2", Payload: sub})
			send(t, c, msg{Type: p.subscribe, ID: "3", Payload: sub})
			m := expect(t, c, "error", "3", "")
			var errs []struct {
				Message    string
				Extensions map[string]any
			}
			if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) != 1 ||
				errs[0].Extensions["code"] != "INVALID_INPUT" || errs[0].Extensions["limit"] != "subscriptions" ||
				!strings.Contains(errs[0].Message, "the limit is 2") {
				t.Fatalf("error payload %s", m.Payload)
			}
			if p.keepAlive { // the legacy protocol ends a failed operation with complete
				expect(t, c, "complete", "3", "")
			}
			// The connection goes on, and a stopped operation frees its place.
			send(t, c, msg{Type: p.stop, ID: "1"})
			send(t, c, msg{Type: p.subscribe, ID: "4", Payload: json.RawMessage(`{"query":"{ name }"}`)})
			for result, done := false, false; !result || !done; {
				switch m := read(t, c); {
				case m.Type == p.next && m.ID == "4":
					result = true
				case m.Type == "complete" && m.ID == "4":
					done = true
				case m.Type == "complete" && m.ID == "1" && p.keepAlive:
				default:
					t.Fatalf("got %s id=%q payload=%s", m.Type, m.ID, m.Payload)
				}
			}
			srv.noErrors(t)
		})
	}
}

// An operation that panics as it starts (in an interceptor, before any
// resolver's own recovery) is answered with an error, and the connection
// goes on serving.
func TestTransport_OperationPanics(t *testing.T) {
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			srv := newServer(t, websocket.Implementation{}, nil)
			srv.SetRecoverFunc(func(context.Context, any) error { return errors.New("internal error") })
			srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
				if graphql.GetOperationContext(ctx).OperationName == "Boom" {
					panic("boom")
				}
				return next(ctx)
			})
			c := dial(t, srv.url, nil, p.name)
			handshake(t, c, p, "")
			send(t, c, msg{Type: p.subscribe, ID: "b", Payload: json.RawMessage(`{"query":"query Boom { name }","operationName":"Boom"}`)})
			m := read(t, c)
			if m.ID != "b" || m.Type == p.next || !strings.Contains(string(m.Payload), "internal error") {
				t.Fatalf("got %s id=%q %s, want an internal error for b", m.Type, m.ID, m.Payload)
			}
			send(t, c, msg{Type: p.subscribe, ID: "q", Payload: json.RawMessage(`{"query":"{ name }"}`)})
			// b's own end (a complete, under graphql-transport-ws) comes first.
			m = read(t, c)
			for m.ID == "b" {
				m = read(t, c)
			}
			if m.Type != p.next || m.ID != "q" || !jsonEqual(m.Payload, `{"data":{"name":"test"}}`) {
				t.Fatalf("after the panic: %s id=%q %s", m.Type, m.ID, m.Payload)
			}
		})
	}
}

// A subscription that fails after it started (its stream's storage went
// down) ends with an error message the client can act on, not with the
// complete of one that is over.
func TestTransport_SubscriptionEndsWithError(t *testing.T) {
	failed := []byte(`[{"message":"the database is unavailable","extensions":{"code":"UNAVAILABLE","retryAfterSeconds":1}}]`)
	for _, p := range protocols {
		t.Run(p.name, func(t *testing.T) {
			srv := newServer(t, websocket.Implementation{}, nil)
			ended := false
			srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
				r := next(ctx)
				if r != nil || ended || graphql.GetOperationContext(ctx).Operation.Operation != "subscription" {
					return r
				}
				ended = true
				var errs gqlerror.List
				if err := json.Unmarshal(failed, &errs); err != nil {
					panic(err)
				}
				return &graphql.Response{Errors: errs}
			})
			c := dial(t, srv.url, nil, p.name)
			handshake(t, c, p, "")
			send(t, c, msg{Type: p.subscribe, ID: "s", Payload: json.RawMessage(`{"query":"subscription { name }"}`)})
			srv.SendNextSubscriptionMessage()
			expect(t, c, p.next, "s", `{"data":{"name":"test"}}`)
			srv.SendCompleteSubscriptionMessage()
			expect(t, c, "error", "s", string(failed))
			if p.name == "graphql-ws" {
				// subscriptions-transport-ws ends every operation with complete.
				expect(t, c, "complete", "s", "")
			}
			// graphql-transport-ws: nothing more for the operation.
			send(t, c, msg{Type: p.subscribe, ID: "q", Payload: json.RawMessage(`{"query":"{ name }"}`)})
			expect(t, c, p.next, "q", `{"data":{"name":"test"}}`)
			expect(t, c, "complete", "q", "")
		})
	}
}
