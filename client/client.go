package client

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
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Client is a client of one rdev server, authenticated with one API key.
type Client struct {
	base     string // the URL New was given, for messages
	endpoint string // http(s)://host[:port]/graphql
	key      string // API token; "" sends no credentials
	http     *http.Client
	dialer   *websocket.Dialer
	// keepAlive is how often a subscription pings the server; a connection
	// that receives nothing for twice as long is considered dead.
	keepAlive time.Duration
	retry     Retry
	// reached is set once the server has answered: from then on, a refused
	// connection is an outage to wait out, not a missing server.
	reached atomic.Bool
}

// Options tunes a Client. The zero value (or nil) is what the rdev CLI uses.
type Options struct {
	// HTTPClient sends queries and mutations; nil uses a new http.Client.
	// Each attempt is bounded by 30 s whatever its Timeout.
	HTTPClient *http.Client
	// KeepAlive is how often Tail pings the server; a connection from which
	// nothing arrives for twice as long is dropped and made again. 0: 15 s.
	KeepAlive time.Duration
	// Retry paces retries after failures worth retrying; zero fields take
	// the defaults (100 ms, 5 s, 2 min).
	Retry Retry
}

// Retry paces retries: waits start at Min and double up to Max, each drawn
// at random from the upper half of its span (so that clients that lost the
// server together do not all come back in the same instant), and a
// server's own hint (Retry-After, retryAfterSeconds) is waited out in
// full. A call fails once failures have gone on for GiveUp without
// progress.
type Retry struct {
	Min, Max, GiveUp time.Duration
}

const (
	requestTimeout   = 30 * time.Second // one POST attempt
	handshakeTimeout = 10 * time.Second // one WebSocket dial
	maxResponseBytes = 16 << 20
)

// New returns a client of the server at baseURL (http://host:8080, or its
// /graphql endpoint) that sends key as a bearer token ("" sends none). It
// fails only for a URL that is not http:// or https://.
func New(baseURL, key string, opts *Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http:// or https:// URL", baseURL)
	}
	if !strings.HasSuffix(u.Path, "/graphql") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/graphql"
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	c := &Client{
		base:     strings.TrimSuffix(strings.TrimSuffix(baseURL, "/"), "/graphql"),
		endpoint: u.String(),
		key:      key,
		http:     o.HTTPClient,
		dialer: &websocket.Dialer{
			Proxy:            http.ProxyFromEnvironment,
			HandshakeTimeout: handshakeTimeout,
			Subprotocols:     []string{"graphql-transport-ws"},
		},
		keepAlive: orDefault(o.KeepAlive, 15*time.Second),
		retry: Retry{
			Min:    orDefault(o.Retry.Min, 100*time.Millisecond),
			Max:    orDefault(o.Retry.Max, 5*time.Second),
			GiveUp: orDefault(o.Retry.GiveUp, 2*time.Minute),
		},
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	return c, nil
}

// orDefault returns d, or def if d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// retrier paces the retries of one request or subscription.
type retrier struct {
	r            Retry
	wait         time.Duration
	failingSince time.Time
}

func (r Retry) retrier() *retrier { return &retrier{r: r, wait: r.Min} }

// progress starts the waits over: the last attempt got somewhere.
func (r *retrier) progress() { r.wait, r.failingSince = r.r.Min, time.Time{} }

// pause waits before the next attempt after err, a transient failure. It
// returns errGaveUp once failures have gone on for GiveUp without
// progress, and ctx's error if ctx ends first.
func (r *retrier) pause(ctx context.Context, err error) error {
	if r.failingSince.IsZero() {
		r.failingSince = time.Now()
	}
	if time.Since(r.failingSince) >= r.r.GiveUp {
		return errGaveUp
	}
	d := delay(r.wait, retryAfter(err))
	r.wait = min(2*r.wait, r.r.Max)
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

// do sends one query or mutation and decodes its data into out. A request
// that fails in a way worth retrying is sent again, with backoff, until it
// has failed for Retry.GiveUp: safe because every mutation this package
// sends is idempotent. GraphQL errors are returned as *Error.
func (c *Client) do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	r := c.retry.retrier()
	for {
		err = c.post(ctx, body, out)
		if !Retryable(err) {
			return err
		}
		if perr := r.pause(ctx, err); perr != nil {
			return err
		}
	}
}

func (c *Client) post(ctx context.Context, body []byte, out any) error {
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
		return c.connectError(err)
	}
	defer func() { _ = resp.Body.Close() }()
	c.reached.Store(true)
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []*gqlError     `json:"errors"`
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

// connectError classifies a failure to get a response: final and
// ErrUnreachable if the server was never reached and refused the
// connection, transient otherwise.
func (c *Client) connectError(err error) error {
	if !c.reached.Load() && refused(err) {
		return &unreachableError{url: c.base, err: err}
	}
	return transientError{err: err}
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

func (c *Client) authorize(h http.Header) {
	if c.key != "" {
		h.Set("Authorization", "Bearer "+c.key)
	}
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

// once sends a request that must not be repeated (it is not idempotent):
// one attempt, whatever its failure.
func (c *Client) once(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	return c.post(ctx, body, out)
}
