package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// client talks to an rdev server as any API client does: queries and
// mutations as GraphQL over HTTP POST, subscriptions over WebSocket with the
// graphql-transport-ws protocol. It holds no connection between calls.
type client struct {
	endpoint string // http(s)://host[:port]/graphql
	key      string // API token; "" sends no credentials
	http     *http.Client
	dialer   *websocket.Dialer

	// keepAlive is how often a subscription pings the server; a connection
	// that receives nothing for twice as long is considered dead.
	keepAlive time.Duration
	// reconnect paces sending a request again, and resubscribing, after a
	// failure worth retrying (see transientError).
	reconnect backoff
}

// backoff paces retries: waits start at min and double up to max, each
// drawn at random from the upper half of its span (so that clients that
// lost the server together do not all come back in the same instant), and
// a server's own hint (Retry-After, retryAfterSeconds) is waited out in
// full.
type backoff struct {
	min, max time.Duration
	// giveUp is how long failures may go on without progress before a
	// request or subscription fails for good.
	giveUp time.Duration
}

// retrier paces the retries of one request or subscription.
type retrier struct {
	b            backoff
	wait         time.Duration
	failingSince time.Time
}

func (b backoff) retrier() *retrier { return &retrier{b: b, wait: b.min} }

// progress starts the waits over: the last attempt got somewhere.
func (r *retrier) progress() { r.wait, r.failingSince = r.b.min, time.Time{} }

// pause waits before the next attempt after err, a transient failure. It
// returns errGaveUp once failures have gone on for giveUp without
// progress, and ctx's error if ctx ends first.
func (r *retrier) pause(ctx context.Context, err error) error {
	if r.failingSince.IsZero() {
		r.failingSince = time.Now()
	}
	if time.Since(r.failingSince) >= r.b.giveUp {
		return errGaveUp
	}
	d := delay(r.wait, retryAfter(err))
	r.wait = min(2*r.wait, r.b.max)
	return sleep(ctx, d)
}

// errGaveUp is how pause reports that failures went on for too long.
var errGaveUp = errors.New("gave up")

// delay is how long to wait: a random span in the upper half of wait, or
// the server's hint if that is longer.
func delay(wait, hint time.Duration) time.Duration {
	d := wait/2 + rand.N(wait/2+1) //nolint:gosec // jitter, not a secret
	return max(d, hint)
}

const (
	requestTimeout   = 30 * time.Second // one POST attempt
	handshakeTimeout = 10 * time.Second // one WebSocket dial
	maxResponseBytes = 16 << 20
)

// newClient returns a client of the server at serverURL: the server's base
// URL (http://host:8080) or its /graphql endpoint.
func newClient(serverURL, key string) (*client, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError(fmt.Sprintf("server: %q is not an http:// or https:// URL", serverURL))
	}
	if !strings.HasSuffix(u.Path, "/graphql") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/graphql"
	}
	return &client{
		endpoint: u.String(),
		key:      key,
		http:     &http.Client{},
		dialer: &websocket.Dialer{
			Proxy:            http.ProxyFromEnvironment,
			HandshakeTimeout: handshakeTimeout,
			Subprotocols:     []string{"graphql-transport-ws"},
		},
		keepAlive: 15 * time.Second,
		reconnect: backoff{min: 100 * time.Millisecond, max: 5 * time.Second, giveUp: 2 * time.Minute},
	}, nil
}

// connFlags are the flags of every subcommand that talks to a server.
type connFlags struct {
	server, key string
}

func (c *connFlags) register(f *envFlags) {
	f.String(&c.server, "server", "RDEV_SERVER", "http://localhost:8080", "URL of the rdev server")
	f.String(&c.key, "key", "RDEV_KEY", "", "API key (rdev_…) to send as a bearer token")
}

func (c *connFlags) client() (*client, error) { return newClient(c.server, c.key) }

// serverError is an error the server reported, with its extensions.code
// and, for RATE_LIMITED and UNAVAILABLE, how long to wait before trying
// again.
type serverError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code              string `json:"code"`
		RetryAfterSeconds int    `json:"retryAfterSeconds"`
	} `json:"extensions"`
}

func (e *serverError) Error() string {
	if e.Extensions.Code == "" {
		return e.Message
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Extensions.Code)
}

// errorCode returns the server's code for err, or "" if the server did not
// report it.
func errorCode(err error) string {
	var se *serverError
	if errors.As(err, &se) {
		return se.Extensions.Code
	}
	return ""
}

// transientError is a failure worth retrying: the network, a proxy, a
// server that is starting or stopping or whose database is down
// (UNAVAILABLE, 503, close code 1013), or a refused rate-limit charge.
// after is the server's hint of when to try again, if it gave one.
// Everything else (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, INVALID_INPUT,
// …) is final.
type transientError struct {
	err   error
	after time.Duration
}

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

func isTransient(err error) bool { return errors.As(err, new(transientError)) }

// retryAfter returns the server's hint of when to retry err, or 0.
func retryAfter(err error) time.Duration {
	var te transientError
	if errors.As(err, &te) {
		return te.after
	}
	return 0
}

// graphQLError turns a GraphQL errors array into one error (the first):
// transient if the server is UNAVAILABLE or refused a rate-limit charge,
// final otherwise.
func graphQLError(errs []*serverError) error {
	switch {
	case len(errs) == 0:
		return nil
	case errs[0] == nil:
		return errors.New("the server reported an error without a message")
	case errs[0].Extensions.Code == "UNAVAILABLE" || errs[0].Extensions.Code == "RATE_LIMITED":
		return transientError{errs[0], time.Duration(errs[0].Extensions.RetryAfterSeconds) * time.Second}
	}
	return errs[0]
}

// do sends one query or mutation and decodes its data into out. A request
// that fails in a way worth retrying (transientError) is sent again, with
// backoff, until it has failed for reconnect.giveUp: safe because every
// mutation the CLI sends is idempotent (executeCommand carries a client
// token, and cancelling twice cancels once). GraphQL errors are returned as
// *serverError.
func (c *client) do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	r := c.reconnect.retrier()
	for {
		err = c.post(ctx, body, out)
		if !isTransient(err) {
			return err
		}
		if perr := r.pause(ctx, err); perr != nil {
			return err
		}
	}
}

func (c *client) post(ctx context.Context, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	c.authorize(req.Header)
	resp, err := c.http.Do(req)
	if err != nil {
		return transientError{err: err}
	}
	defer func() { _ = resp.Body.Close() }()
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []*serverError  `json:"errors"`
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return transientError{err: err}
	}
	if err := json.Unmarshal(data, &r); err != nil {
		err = fmt.Errorf("%s answered %s, not a GraphQL response", c.endpoint, resp.Status)
		if retryableStatus(resp.StatusCode) {
			return transientError{err, retryAfterHeader(resp.Header)}
		}
		return err
	}
	if err := graphQLError(r.Errors); err != nil {
		var te transientError
		if errors.As(err, &te) {
			te.after = max(te.after, retryAfterHeader(resp.Header))
			return te
		}
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", c.endpoint, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(r.Data, out)
}

// retryableStatus reports whether an HTTP status says to try again later:
// a proxy that could not reach the server, a server that cannot serve now,
// a refused rate-limit charge.
func retryableStatus(status int) bool {
	switch status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		return true
	}
	return false
}

// retryAfterHeader returns a response's Retry-After in seconds, or 0.
func retryAfterHeader(h http.Header) time.Duration {
	n, err := strconv.Atoi(h.Get("Retry-After"))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

func (c *client) authorize(h http.Header) {
	if c.key != "" {
		h.Set("Authorization", "Bearer "+c.key)
	}
}

// subscribe runs a subscription until next reports that it is done, and
// survives dropped connections: it reconnects and subscribes again with
// the variables vars returns then, so a caller resumes where it left off
// (commandOutput's afterSeq). next is called on the caller's behalf from
// one goroutine at a time; an error from it ends the subscription.
//
// Reconnect rule (see backoff): a connection that delivered data or stayed
// up for a keep-alive interval counts as progress and starts the waits
// over. subscribe gives up when it has made no progress for
// reconnect.giveUp. What the server says is final (GraphQL errors other
// than UNAVAILABLE and RATE_LIMITED, 44xx close codes, refused
// handshakes) ends it at once; an outage (UNAVAILABLE, close code 1013,
// 503, a subscription completed before its end) and a dropped connection
// do not.
func (c *client) subscribe(ctx context.Context, query string, vars func() map[string]any,
	next func(data json.RawMessage) (done bool, err error)) error {
	r := c.reconnect.retrier()
	for {
		start := time.Now()
		progressed, err := c.session(ctx, query, vars, next)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !isTransient(err):
			return err
		}
		if progressed || time.Since(start) >= c.keepAlive {
			r.progress()
		}
		if perr := r.pause(ctx, err); errors.Is(perr, errGaveUp) {
			return transientError{err: fmt.Errorf("lost the connection to %s and could not get it back for %s: %w",
				c.endpoint, c.reconnect.giveUp, errors.Unwrap(err))}
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
func (c *client) session(ctx context.Context, query string, vars func() map[string]any,
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
			done, err := c.handle(r.msg, query, vars, next, write)
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
func (c *client) handle(m wsMessage, query string, vars func() map[string]any,
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
			Errors []*serverError  `json:"errors"`
		}
		if err := json.Unmarshal(m.Payload, &r); err != nil {
			return false, fmt.Errorf("bad subscription data from the server: %w", err)
		}
		if err := graphQLError(r.Errors); err != nil {
			return false, err
		}
		return next(r.Data)
	case "error":
		var errs []*serverError
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
// transient.
func (c *client) dial(ctx context.Context) (*websocket.Conn, error) {
	u, _ := url.Parse(c.endpoint) // parsed in newClient
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	conn, resp, err := c.dialer.DialContext(ctx, u.String(), nil)
	if resp != nil && resp.Body != nil {
		defer func() { _ = resp.Body.Close() }()
	}
	if err != nil {
		if resp == nil || resp.StatusCode < 400 || retryableStatus(resp.StatusCode) {
			var after time.Duration
			if resp != nil {
				after = retryAfterHeader(resp.Header)
			}
			return nil, transientError{err, after}
		}
		var r struct {
			Errors []*serverError `json:"errors"`
		}
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r) == nil && len(r.Errors) > 0 {
			if gerr := graphQLError(r.Errors); isTransient(gerr) {
				return nil, gerr
			}
			return nil, r.Errors[0]
		}
		if resp.StatusCode >= 500 {
			return nil, transientError{err: fmt.Errorf("%s refused the WebSocket: %s", c.endpoint, resp.Status)}
		}
		return nil, fmt.Errorf("%s refused the WebSocket: %s", c.endpoint, resp.Status)
	}
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
func (c *client) readLoop(conn *websocket.Conn) (<-chan readResult, chan<- struct{}) {
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
// server's database is down) and 1001 (it is shutting down) among them,
// is a broken connection (transient).
func closeError(err error) error {
	var ce *websocket.CloseError
	if errors.As(err, &ce) && ce.Code >= 4400 && ce.Code < 4500 {
		return fmt.Errorf("the server closed the connection: %s (%d)", ce.Text, ce.Code)
	}
	return transientError{err: err}
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
