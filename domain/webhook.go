package domain

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// Webhook signing secrets look like "whsec_" and the base64 of the key, as
// Standard Webhooks libraries expect them.
const (
	WebhookSecretPrefix = "whsec_"
	// WebhookSecretBytes is the length of a new secret's key.
	WebhookSecretBytes = 32
)

// NewWebhookSecret returns a fresh signing secret.
func NewWebhookSecret() string {
	var b [WebhookSecretBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms.
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(b[:])
}

// DecodeWebhookSecret returns the key inside a signing secret. It returns
// EINVALID for anything but "whsec_" and the base64 of at least 24 bytes.
func DecodeWebhookSecret(secret string) ([]byte, error) {
	rest, ok := strings.CutPrefix(secret, WebhookSecretPrefix)
	key, err := base64.StdEncoding.DecodeString(rest)
	if !ok || err != nil || len(key) < 24 {
		return nil, Errorf(EINVALID, "secret: must be %q and the base64 of at least 24 bytes", WebhookSecretPrefix)
	}
	return key, nil
}

// WebhookAttempt is one try at delivering one message to one endpoint.
type WebhookAttempt struct {
	URL string
	// MessageID is the message's webhook-id, the same on every retry so that
	// receivers can drop duplicates.
	MessageID string
	Timestamp time.Time
	// Body is the JSON message: {"type", "timestamp", "data"}.
	Body []byte
	// Secrets sign the message, each one; more than one while a rotation's
	// grace period lasts.
	Secrets []string
	// TraceParent and TraceState, when set, are sent as the W3C trace
	// context headers of the same names.
	TraceParent string
	TraceState  string
}

// WebhookResponse is how an attempt went.
type WebhookResponse struct {
	// StatusCode is the receiver's HTTP status; 0 when no response came.
	StatusCode int
	Latency    time.Duration
	// RetryAfter is what a 429 or 503 response asked for; 0 if nothing.
	RetryAfter time.Duration
	// RequestExcerpt and ResponseExcerpt are the first bytes of the bodies
	// sent and received, for the delivery log.
	RequestExcerpt, ResponseExcerpt string
	// Err says why no usable response came: the address was refused, the
	// connection failed, the attempt timed out.
	Err error
}

// WebhookSender sends one attempt. It never follows redirects and never
// connects to an address its policy refuses; such failures are in the
// response's Err, not returned.
type WebhookSender interface {
	Send(ctx context.Context, a WebhookAttempt) WebhookResponse
}

// WebhookOutcome is what an attempt's response means for the delivery.
type WebhookOutcome int

// The outcomes of an attempt.
const (
	// WebhookDelivered: a 2xx response.
	WebhookDelivered WebhookOutcome = iota
	// WebhookRetry: any other failure; try again on the schedule.
	WebhookRetry
	// WebhookGone: 410 Gone; the receiver asks for no more messages, so the
	// endpoint is disabled.
	WebhookGone
)

// Outcome classifies r: 2xx delivered; 410 gone; everything else, including
// redirects (never followed), 429, 5xx and transport errors, is retried.
func (r WebhookResponse) Outcome() WebhookOutcome {
	switch {
	case r.Err == nil && r.StatusCode >= 200 && r.StatusCode < 300:
		return WebhookDelivered
	case r.Err == nil && r.StatusCode == http.StatusGone:
		return WebhookGone
	}
	return WebhookRetry
}

// DefaultWebhookSchedule is the wait before each retry of a failed message,
// after the first attempt that is made at once: 5 s, 5 min, 30 min, 2 h,
// 5 h, 10 h, 14 h, 20 h, 24 h, about 3 days in all, after which the message
// has failed for good.
var DefaultWebhookSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour,
	5 * time.Hour, 10 * time.Hour, 14 * time.Hour, 20 * time.Hour, 24 * time.Hour,
}

// MaxWebhookRetryAfter caps how long a receiver's Retry-After may postpone a
// retry.
const MaxWebhookRetryAfter = 24 * time.Hour

// WebhookRetryPolicy says when a failed message is tried again.
type WebhookRetryPolicy struct {
	// Schedule is the wait before retry n+1 after attempt n+1 failed.
	Schedule []time.Duration
	// Jitter spreads each wait by up to this fraction either way, so that
	// messages that failed together do not all come back together.
	Jitter float64
	// Rand returns a number in [0, 1); nil uses math/rand/v2.
	Rand func() float64
}

// DefaultWebhookRetryPolicy is the schedule above with ±20% jitter.
var DefaultWebhookRetryPolicy = WebhookRetryPolicy{Schedule: DefaultWebhookSchedule, Jitter: 0.2}

// Next returns when to make the next attempt after the attempts-th one (1 for
// the first) failed at now with resp, and false when no attempt is left. A
// Retry-After from the receiver is honoured when it asks for longer than the
// schedule, up to MaxWebhookRetryAfter.
func (p WebhookRetryPolicy) Next(attempts int, now time.Time, resp WebhookResponse) (time.Time, bool) {
	if attempts < 1 || attempts > len(p.Schedule) {
		return time.Time{}, false
	}
	wait := p.Schedule[attempts-1]
	if p.Jitter > 0 {
		r := p.Rand
		if r == nil {
			r = mrand.Float64
		}
		wait += time.Duration((r()*2 - 1) * p.Jitter * float64(wait))
	}
	if ra := min(resp.RetryAfter, MaxWebhookRetryAfter); ra > wait {
		wait = ra
	}
	return now.Add(wait), true
}
