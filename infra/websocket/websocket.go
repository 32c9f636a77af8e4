// Package websocket serves GraphQL over WebSocket with
// github.com/gorilla/websocket.
//
// Transport is the gqlgen transport: it speaks graphql-transport-ws and the
// legacy graphql-ws itself and writes results without re-encoding them. Mount
// it with
//
//	srv.AddTransport(websocket.Transport{Upgrade: websocket.Implementation{...}, InitFunc: ...})
//
// Implementation upgrades connections for it (origin check, buffers, write
// timeout, compression); it also fills gqlgen's own
// transport.WebsocketImplementation seam.
package websocket

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	gorilla "github.com/gorilla/websocket"
)

// DefaultWriteTimeout bounds one message write when Implementation.WriteTimeout
// is zero.
const DefaultWriteTimeout = 10 * time.Second

// DefaultReadBufferSize is a connection's read buffer when
// Implementation.ReadBufferSize is zero.
const DefaultReadBufferSize = 4096

// closeTimeout bounds writing a close frame, so closing never waits long on a
// slow or absent peer.
const closeTimeout = time.Second

// abandonGrace is how long a connection may outlive the HTTP handler that
// accepted it before it is closed. The transport normally closes it itself
// just after its handler returns; the grace lets that close (and its close
// frame) win.
const abandonGrace = time.Second

// Implementation is a transport.WebsocketImplementation backed by
// github.com/gorilla/websocket. The zero value is usable: it accepts only
// same-origin browser requests (and requests without an Origin header), with
// gorilla's default buffers and no compression.
type Implementation struct {
	// CheckOrigin reports whether the upgrade request's Origin is allowed;
	// a refused request gets HTTP 403. Nil allows requests without an
	// Origin header and same-origin requests only. See OriginChecker.
	CheckOrigin func(r *http.Request) bool
	// ReadBufferSize and WriteBufferSize are the I/O buffer sizes in bytes.
	// Zero reads through a buffer of DefaultReadBufferSize of the
	// connection's own, and writes through the HTTP server's (4 KiB). The
	// HTTP server's read buffer is never reused: reading through it makes
	// every read error (a deadline, the peer leaving) cancel the request's
	// context, which would look like the server shutting down. They do not
	// limit message sizes: the transport's read limit does.
	ReadBufferSize, WriteBufferSize int
	// HandshakeTimeout bounds writing the upgrade response; zero is none.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds writing one message. A peer that cannot take a
	// message in time is disconnected, so a slow client cannot hold the
	// transport's writers (and the subscriptions behind them) forever.
	// Zero means DefaultWriteTimeout; a negative value means no limit.
	WriteTimeout time.Duration
	// EnableCompression negotiates per-message deflate (RFC 7692) with
	// clients that offer it. The read limit then applies to decompressed
	// messages too.
	EnableCompression bool
	// Subprotocols are accepted in addition to gqlgen's own
	// ("graphql-transport-ws" and "graphql-ws"). The client's order of
	// preference decides between them.
	Subprotocols []string
}

var _ transport.WebsocketImplementation = Implementation{}

// Accept upgrades r to a WebSocket connection. It negotiates one of
// options.Subprotocols (and Implementation.Subprotocols), in the client's
// order of preference, and sends options.ResponseHeader, along with headers
// that middleware already set on w, in the 101 response. On failure the
// upgrader has already replied with an HTTP error (403 for a refused Origin,
// 400 for a malformed handshake) and Accept returns the error.
//
// The connection is closed at the latest shortly after the request's context
// ends, that is after the handler that called Accept has returned, so a
// handler that forgets to close it cannot leak it.
func (i Implementation) Accept(w http.ResponseWriter, r *http.Request, options transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	readBuffer := i.ReadBufferSize
	if readBuffer <= 0 {
		readBuffer = DefaultReadBufferSize
	}
	upgrader := gorilla.Upgrader{
		HandshakeTimeout:  i.HandshakeTimeout,
		ReadBufferSize:    readBuffer,
		WriteBufferSize:   i.WriteBufferSize,
		CheckOrigin:       i.CheckOrigin,
		EnableCompression: i.EnableCompression,
		Subprotocols:      selectSubprotocol(r, i.Subprotocols, options.Subprotocols),
	}
	ws, err := upgrader.Upgrade(w, r, responseHeader(w.Header(), options.ResponseHeader))
	if err != nil {
		return nil, err
	}
	writeTimeout := i.WriteTimeout
	if writeTimeout == 0 {
		writeTimeout = DefaultWriteTimeout
	}
	c := &conn{ws: ws, writeTimeout: writeTimeout}
	c.mu.Lock()
	c.stopAbandon = context.AfterFunc(r.Context(), c.abandon)
	c.mu.Unlock()
	return c, nil
}

// selectSubprotocol returns, as the upgrader's list, the first subprotocol
// the client offers that the server supports, so that the client's
// preference wins (gorilla would otherwise pick in the server's order). With
// no match it returns every supported one, and the upgrader negotiates none.
func selectSubprotocol(r *http.Request, lists ...[]string) []string {
	supported := []string{}
	for _, l := range lists {
		for _, p := range l {
			if !slices.Contains(supported, p) {
				supported = append(supported, p)
			}
		}
	}
	for _, p := range gorilla.Subprotocols(r) {
		if slices.Contains(supported, p) {
			return []string{p}
		}
	}
	return supported
}

// responseHeader returns the headers for the 101 response: those already set
// on the ResponseWriter (gorilla writes the response itself, so it would drop
// them) and the transport's, less those that describe the handshake or the
// body, which the upgrader owns.
func responseHeader(set, extra http.Header) http.Header {
	h := http.Header{}
	for _, src := range []http.Header{set, extra} {
		for k, vs := range src {
			k = http.CanonicalHeaderKey(k)
			switch {
			case strings.HasPrefix(k, "Sec-Websocket-"),
				k == "Connection", k == "Upgrade",
				k == "Content-Length", k == "Transfer-Encoding":
				continue
			}
			h[k] = append(h[k], vs...)
		}
	}
	return h
}
