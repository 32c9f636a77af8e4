package websocket

import (
	"context"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	gorilla "github.com/gorilla/websocket"
)

// Defaults for Transport's zero values.
const (
	DefaultInitTimeout = 10 * time.Second
	DefaultKeepAlive   = 15 * time.Second
	DefaultReadLimit   = 1 << 20
)

// Transport serves GraphQL over WebSocket with both subprotocols clients
// speak: graphql-transport-ws (the graphql-ws library) and the legacy
// graphql-ws of subscriptions-transport-ws, which is also used when a client
// names no subprotocol. Add it to a gqlgen server with AddTransport.
//
// It writes each result as the executor encoded it: the response's data is
// spliced into the message, never decoded or re-encoded, so a stream of large
// results costs one copy per message.
//
// Liveness: every KeepAlive the server sends a WebSocket ping frame, and the
// protocol's own keep-alive ("ping" or "ka"); a connection from which nothing
// at all (no message, no pong frame) arrives for two intervals is half-open
// and is closed.
type Transport struct {
	// Upgrade accepts the connection: origin check, buffers, write timeout,
	// compression.
	Upgrade Implementation
	// InitFunc, if set, sees the connection_init payload and returns the
	// context for the connection's operations. An error refuses the
	// connection: it closes with 4403 and the error's text (a
	// *domain.Error's message), for a domain.EUNAVAILABLE error with 1013
	// ("Try Again Later"), which clients retry, and for a
	// domain.ERATELIMITED one with 4429 ("Too Many Requests"). If the
	// context it returns later ends with a *domain.Error as its cause (the
	// key was revoked), the connection's operations end and it closes the
	// same way, once they have sent their last message.
	InitFunc func(ctx context.Context, payload transport.InitPayload) (context.Context, error)
	// Admit, if set, is asked to admit the connection once InitFunc has
	// accepted it, with InitFunc's context (which tells the caller the
	// connection counts against), and returns the function that frees its
	// place when the connection ends, however it ends. An error refuses the
	// connection like InitFunc's; a domain.ERATELIMITED one (the caller
	// holds too many connections) closes it with 4429.
	Admit func(ctx context.Context) (release func(), err error)
	// InitTimeout bounds the wait for connection_init; the connection then
	// closes with 4408. Zero means DefaultInitTimeout.
	InitTimeout time.Duration
	// KeepAlive is the ping interval. Zero means DefaultKeepAlive; a
	// negative value sends no pings and never times out a silent client.
	KeepAlive time.Duration
	// ReadLimit caps one message from the client; a larger one closes the
	// connection with 1009. Zero means DefaultReadLimit.
	ReadLimit int64
	// MaxOperations caps the operations (in practice, subscriptions) one
	// connection runs at once; one more gets an error message with code
	// INVALID_INPUT, and the connection goes on. Zero or less: no cap.
	MaxOperations int
	// ErrorFunc, if set, is told of unexpected read and write failures (a
	// peer that vanished, a read timeout, an abnormal close code).
	ErrorFunc func(ctx context.Context, err error)
	// CloseFunc, if set, is called once per connection with the close code
	// it ended with.
	CloseFunc func(ctx context.Context, code int)
}

var _ graphql.Transport = Transport{}

// Supports reports whether r asks for a WebSocket upgrade.
func (t Transport) Supports(r *http.Request) bool {
	return gorilla.IsWebSocketUpgrade(r)
}

// Do upgrades the request and serves the connection until it closes. A
// refused upgrade has already been answered with an HTTP error.
func (t Transport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	wc, err := t.Upgrade.Accept(w, r, transport.WebsocketAcceptOptions{Subprotocols: []string{transportWS.name, legacyWS.name}})
	if err != nil {
		return
	}
	c := wc.(*conn)
	p := &legacyWS
	if c.Subprotocol() == transportWS.name {
		p = &transportWS
	}
	s := &session{
		t: t.withDefaults(), c: c, p: p, exec: exec, headers: r.Header,
		ops: map[string]*operation{},
	}
	s.serve(r.Context())
}

func (t Transport) withDefaults() Transport {
	if t.InitTimeout <= 0 {
		t.InitTimeout = DefaultInitTimeout
	}
	if t.KeepAlive == 0 {
		t.KeepAlive = DefaultKeepAlive
	}
	if t.ReadLimit <= 0 {
		t.ReadLimit = DefaultReadLimit
	}
	return t
}
