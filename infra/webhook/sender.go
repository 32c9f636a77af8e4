package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/rdev-hq/rdev/domain"
)

// Defaults for Options' zero values.
const (
	DefaultTimeout      = 15 * time.Second
	DefaultExcerptBytes = 1024
	// drainBytes is how much of a response body beyond the excerpt is read
	// so that the connection can be reused; a longer body closes it.
	drainBytes = 64 << 10
)

// Options configure a Sender. Zero values take the defaults above.
type Options struct {
	// Timeout bounds one attempt: connecting, sending, and the response.
	Timeout time.Duration
	// AllowHTTP lets messages go to http:// URLs, for development.
	AllowHTTP bool
	// Allow lists internal prefixes that receivers may be in.
	Allow []netip.Prefix
	// Lookup resolves host names; nil uses the system's resolver.
	Lookup LookupFunc
	// ExcerptBytes is how much of each body the response keeps.
	ExcerptBytes int
	// UserAgent is sent with every message.
	UserAgent string
	// TLS configures the client's TLS (nil: the system's roots, TLS 1.2+).
	TLS *tls.Config
}

// Sender posts webhook messages. It never follows a redirect, never uses an
// HTTP proxy from the environment (a proxy would connect where the guard
// cannot see), and connects only to addresses its Guard allows.
type Sender struct {
	client *http.Client
	opts   Options
}

var _ domain.WebhookSender = (*Sender)(nil)

// NewSender returns a Sender with opts.
func NewSender(opts Options) *Sender {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.ExcerptBytes <= 0 {
		opts.ExcerptBytes = DefaultExcerptBytes
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "rdev-webhooks/1"
	}
	tlsConfig := opts.TLS
	if tlsConfig == nil {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	d := newDialer(&Guard{Allow: opts.Allow}, opts.Lookup, opts.Timeout)
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSClientConfig:       tlsConfig,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Sender{
		opts: opts,
		client: &http.Client{
			Transport: transport,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
}

// Close closes idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// Send posts a signed and returns how it went; failures are in the
// response's Err.
func (s *Sender) Send(ctx context.Context, a domain.WebhookAttempt) domain.WebhookResponse {
	resp := domain.WebhookResponse{RequestExcerpt: excerpt(a.Body, s.opts.ExcerptBytes)}
	if _, err := domain.ParseWebhookURL(a.URL, s.opts.AllowHTTP); err != nil {
		resp.Err = err
		return resp
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.URL, bytes.NewReader(a.Body))
	if err != nil {
		resp.Err = err
		return resp
	}
	if err := setHeaders(req.Header, a); err != nil {
		resp.Err = err
		return resp
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.opts.UserAgent)
	// The W3C trace context of the delivery, so the receiver's work can
	// join the trace of the change it reports.
	if a.TraceParent != "" {
		req.Header.Set("traceparent", a.TraceParent)
		if a.TraceState != "" {
			req.Header.Set("tracestate", a.TraceState)
		}
	}

	start := time.Now()
	res, err := s.client.Do(req)
	if err != nil {
		resp.Latency = time.Since(start)
		resp.Err = unwrapURLError(err)
		return resp
	}
	defer func() { _ = res.Body.Close() }()
	head, _ := io.ReadAll(io.LimitReader(res.Body, int64(s.opts.ExcerptBytes)))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, drainBytes))
	resp.Latency = time.Since(start)
	resp.StatusCode = res.StatusCode
	resp.ResponseExcerpt = excerpt(head, s.opts.ExcerptBytes)
	if res.StatusCode == http.StatusTooManyRequests || res.StatusCode == http.StatusServiceUnavailable {
		resp.RetryAfter = retryAfter(res.Header.Get("Retry-After"), time.Now())
	}
	return resp
}

// unwrapURLError drops net/http's "Post <url>:" wrapper around a refused
// address, whose own message says it all.
func unwrapURLError(err error) error {
	var r *RefusedError
	if errors.As(err, &r) {
		return r
	}
	return err
}

// retryAfter parses a Retry-After value: seconds, or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		switch {
		case n <= 0:
			return 0
		case n >= int64(domain.MaxWebhookRetryAfter/time.Second):
			return domain.MaxWebhookRetryAfter // and no overflow
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), domain.MaxWebhookRetryAfter)
	}
	return 0
}

// excerpt returns at most n bytes of b, never cutting a character in two,
// with invalid UTF-8 replaced.
func excerpt(b []byte, n int) string {
	if len(b) > n {
		b = b[:n]
	}
	// The bytes may be the start of a longer body: drop a character cut off
	// at the end rather than show it as U+FFFD.
	i := len(b) - 1
	for i > 0 && len(b)-i < utf8.UTFMax && !utf8.RuneStart(b[i]) {
		i--
	}
	if i >= 0 && !utf8.FullRune(b[i:]) {
		b = b[:i]
	}
	return string(bytes.ToValidUTF8(b, []byte("\uFFFD")))
}
