package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// subscribe runs a subscription until next reports that it is done, and
// survives dropped connections: it reconnects and subscribes again with
// the variables vars returns then, so a caller resumes where it left off
// (commandOutput's afterSeq). next is called from one goroutine at a
// time; an error from it ends the subscription.
//
// Reconnect rule (see Retry): a connection that delivered data or stayed
// up for a keep-alive interval counts as progress and starts the waits
// over. subscribe gives up when it has made no progress for Retry.GiveUp.
// What the server says is final (GraphQL errors other than UNAVAILABLE and
// RATE_LIMITED, 44xx close codes, refused handshakes) ends it at once; an
// outage (UNAVAILABLE, close code 1013, 503, a subscription completed
// before its end) and a dropped connection (1001, 1006) do not.
func (c *Client) subscribe(ctx context.Context, query string, vars func() map[string]any,
	next func(data json.RawMessage) (done bool, err error)) error {
	r := c.retry.retrier()
	for {
		start := time.Now()
		progressed, err := c.session(ctx, query, vars, next)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !Retryable(err):
			return err
		}
		if progressed || time.Since(start) >= c.keepAlive {
			r.progress()
		}
		if perr := r.pause(ctx, err); errors.Is(perr, errGaveUp) {
			return transientError{err: fmt.Errorf("lost the connection to %s and could not get it back for %s: %w",
				c.endpoint, c.retry.GiveUp, errors.Unwrap(err))}
		} else if perr != nil {
			return perr
		}
	}
}

// wsMessage is a graphql-transport-ws message.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// subscriptionID is the only operation a session runs.
const subscriptionID = "1"

// session runs the subscription over one connection. It returns nil once
// next reports done, and a transientError when the connection broke or the
// server ended the subscription early. progressed reports whether any data
// arrived.
func (c *Client) session(ctx context.Context, query string, vars func() map[string]any,
	next func(json.RawMessage) (bool, error)) (progressed bool, err error) {
	conn, err := c.dial(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = conn.Close()
	}()
	write := func(m any) error {
		_ = conn.SetWriteDeadline(time.Now().Add(c.keepAlive))
		if err := conn.WriteJSON(m); err != nil {
			return transientError{err: err}
		}
		return nil
	}
	init := map[string]any{"type": "connection_init"}
	if c.key != "" {
		init["payload"] = map[string]string{"authorization": "Bearer " + c.key}
	}
	if err := write(init); err != nil {
		return false, err
	}

	msgs, quit := c.readLoop(conn)
	defer close(quit)
	ping := time.NewTicker(c.keepAlive)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = write(wsMessage{ID: subscriptionID, Type: "complete"})
			return progressed, ctx.Err()
		case <-ping.C:
			if err := write(wsMessage{Type: "ping"}); err != nil {
				return progressed, err
			}
		case r := <-msgs:
			if r.err != nil {
				return progressed, closeError(r.err)
			}
			done, err := handle(r.msg, query, vars, next, write)
			if err != nil {
				return progressed, err
			}
			progressed = progressed || r.msg.Type == "next"
			if done {
				_ = write(wsMessage{ID: subscriptionID, Type: "complete"})
				return progressed, nil
			}
		}
	}
}

// handle acts on one message from the server.
func handle(m wsMessage, query string, vars func() map[string]any,
	next func(json.RawMessage) (bool, error), write func(any) error) (done bool, err error) {
	switch m.Type {
	case "connection_ack":
		return false, write(map[string]any{"id": subscriptionID, "type": "subscribe",
			"payload": map[string]any{"query": query, "variables": vars()}})
	case "ping":
		return false, write(wsMessage{Type: "pong", Payload: m.Payload})
	case "pong":
		return false, nil
	case "next":
		var r struct {
			Data   json.RawMessage `json:"data"`
			Errors []*gqlError     `json:"errors"`
		}
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			return false, fmt.Errorf("bad subscription data from the server: %w", err)
		}
		if err := graphQLError(r.Errors); err != nil {
			return false, err
		}
		return next(r.Data)
	case "error":
		var errs []*gqlError
		if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) == 0 {
			return false, fmt.Errorf("the server refused the subscription: %s", m.Payload)
		}
		return false, graphQLError(errs)
	case "complete":
		return false, transientError{err: errors.New("the server ended the subscription early")}
	}
	return false, nil // a message type from a later protocol version
}

// dial opens a graphql-transport-ws connection. A handshake the server
// refuses with a 4xx status other than 429 is final; any other failure is
// transient, but for a server never reached that refuses the connection
// (ErrUnreachable).
func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	u, _ := url.Parse(c.endpoint) // parsed in New
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	conn, resp, err := c.dialer.DialContext(ctx, u.String(), nil)
	if resp != nil && resp.Body != nil {
		defer func() { _ = resp.Body.Close() }()
	}
	if err != nil {
		if resp == nil {
			return nil, c.connectError(err)
		}
		c.reached.Store(true)
		if resp.StatusCode < 400 || retryableStatus(resp.StatusCode) {
			return nil, transientError{err, retryAfterHeader(resp.Header)}
		}
		var r struct {
			Errors []*gqlError `json:"errors"`
		}
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r) == nil && len(r.Errors) > 0 {
			return nil, graphQLError(r.Errors)
		}
		if resp.StatusCode >= 500 {
			return nil, transientError{err: fmt.Errorf("%s refused the WebSocket: %s", c.endpoint, resp.Status)}
		}
		return nil, fmt.Errorf("%s refused the WebSocket: %s", c.endpoint, resp.Status)
	}
	c.reached.Store(true)
	if conn.Subprotocol() != "graphql-transport-ws" {
		_ = conn.Close()
		return nil, fmt.Errorf("%s does not speak graphql-transport-ws", c.endpoint)
	}
	return conn, nil
}

type readResult struct {
	msg wsMessage
	err error
}

// readLoop reads messages in a goroutine until the connection fails or
// quit is closed. Every read must finish within two keep-alive intervals:
// the server pings, and answers our pings, more often than that, so a
// silent connection is a dead one.
func (c *Client) readLoop(conn *websocket.Conn) (<-chan readResult, chan<- struct{}) {
	out, quit := make(chan readResult), make(chan struct{})
	go func() {
		for {
			var r readResult
			_ = conn.SetReadDeadline(time.Now().Add(2 * c.keepAlive))
			r.err = conn.ReadJSON(&r.msg)
			select {
			case out <- r:
			case <-quit:
				return
			}
			if r.err != nil {
				return
			}
		}
	}()
	return out, quit
}

// closeError classifies a read failure: a 44xx close code is the server
// refusing us (final); anything else, 1013 "Try Again Later" (the
// server's database is down), 1001 (it is shutting down) and 1006 (the
// connection broke) among them, is transient.
func closeError(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code >= 4400 && ce.Code < 4500 {
		return &CloseError{Code: ce.Code, Reason: ce.Text}
	}
	return transientError{err: err}
}
