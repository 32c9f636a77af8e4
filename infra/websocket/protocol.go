package websocket

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/99designs/gqlgen/graphql"
)

// protocol names the message types of one GraphQL WebSocket subprotocol.
type protocol struct {
	name      string
	subscribe string // client: start an operation
	stop      string // client: stop an operation
	next      string // server: one result
	keepAlive string // server: the periodic keep-alive message
	// legacy marks subscriptions-transport-ws' protocol, which is more
	// forgiving: it has no ping from the client, answers a stop with
	// "complete", reports a refused init with "connection_error", and sends
	// "ka" right after the ack.
	legacy bool
}

// The two subprotocols: graphql-transport-ws
// (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md) and the
// legacy graphql-ws
// (https://github.com/apollographql/subscriptions-transport-ws/blob/master/PROTOCOL.md).
var (
	transportWS = protocol{name: "graphql-transport-ws", subscribe: "subscribe", stop: "complete", next: "next", keepAlive: "ping"}
	legacyWS    = protocol{name: "graphql-ws", subscribe: "start", stop: "stop", next: "data", keepAlive: "ka", legacy: true}
)

// Close codes of graphql-transport-ws, used by both protocols, and of
// RFC 6455.
const (
	closeBadRequest   = 4400
	closeUnauthorized = 4401
	closeForbidden    = 4403
	closeInitTimeout  = 4408
	closeDuplicateID  = 4409
	closeTooManyInits = 4429
	// closeTooManyRequests refuses a connection whose caller is over a
	// limit: it holds as many connections as it may.
	closeTooManyRequests = 4429
	closeGoingAway       = 1001
	closeNormal          = 1000
	closeAbnormalClosed  = 1006 // reported, never sent: the peer vanished
	// closeTryAgainLater is RFC 6455's "Try Again Later": the server cannot
	// serve the connection now (its storage is down), and a client should
	// reconnect after a while. graphql-ws clients retry it; they give up on
	// most 44xx codes.
	closeTryAgainLater = 1013
)

// inMessage is a message from the client.
type inMessage struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload"`
}

// bufPool recycles the buffers messages are encoded into: a result's
// message is built, written and dropped, so each would otherwise be garbage
// the size of the result.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// encodeMessage appends a server message to buf. payload must be valid JSON
// or nil for none.
func encodeMessage(buf []byte, typ, id string, payload []byte) []byte {
	buf = append(buf, `{"type":`...)
	buf = strconv.AppendQuote(buf, typ) // message types are plain ASCII
	if id != "" {
		buf = append(buf, `,"id":`...)
		buf = appendJSONString(buf, id)
	}
	if payload != nil {
		buf = append(buf, `,"payload":`...)
		buf = append(buf, payload...)
	}
	return append(buf, '}')
}

// encodeResult appends the message carrying one result to buf. The common
// result, data alone, is spliced in as the executor encoded it; one with
// errors or extensions goes through encoding/json.
func encodeResult(buf []byte, typ, id string, r *graphql.Response) ([]byte, error) {
	buf = append(buf, `{"type":`...)
	buf = strconv.AppendQuote(buf, typ)
	buf = append(buf, `,"id":`...)
	buf = appendJSONString(buf, id)
	buf = append(buf, `,"payload":`...)
	if len(r.Errors) == 0 && len(r.Extensions) == 0 && r.Label == "" && len(r.Path) == 0 && r.HasNext == nil && len(r.Data) > 0 {
		buf = append(buf, `{"data":`...)
		buf = append(buf, r.Data...)
		buf = append(buf, '}')
	} else {
		b, err := json.Marshal(r)
		if err != nil {
			return buf, err
		}
		buf = append(buf, b...)
	}
	return append(buf, '}'), nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(buf []byte, s string) []byte {
	b, _ := json.Marshal(s) // a string always encodes
	return append(buf, b...)
}
