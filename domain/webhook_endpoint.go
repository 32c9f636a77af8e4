package domain

import (
	"context"
	"time"
)

// Webhook event types: what a message's "type" says happened.
const (
	EventCommandQueued   = "command.queued"
	EventCommandStarted  = "command.started"
	EventCommandFinished = "command.finished"
	EventCommandFailed   = "command.failed"
	EventKeyRevoked      = "key.revoked"
	// EventPing is what testWebhook sends. It cannot be subscribed to: every
	// endpoint receives it when asked to.
	EventPing = "webhook.ping"
)

// WebhookEvents lists the event types an endpoint may subscribe to, in the
// order the documentation gives them.
var WebhookEvents = []string{
	EventCommandQueued, EventCommandStarted, EventCommandFinished, EventCommandFailed, EventKeyRevoked,
}

// Limits on webhook fields.
const (
	// MaxWebhookDescriptionLength bounds a description, in characters.
	MaxWebhookDescriptionLength = 500
	// MaxWebhookSecretGrace bounds how long a rotated secret keeps signing.
	MaxWebhookSecretGrace = 7 * 24 * time.Hour
)

// Why an endpoint was disabled.
const (
	// WebhookDisabledByUser: updateWebhook set enabled to false.
	WebhookDisabledByUser = "disabled by a user"
	// WebhookDisabledGone: the receiver answered 410 Gone.
	WebhookDisabledGone = "the receiver answered 410 Gone"
	// WebhookDisabledFailing: too many attempts failed in a row.
	WebhookDisabledFailing = "too many consecutive failed attempts"
	// WebhookDisabledCreatorRevoked: the API key that created the endpoint
	// was revoked (see APIKeyRepository.RevokeAPIKeyTree).
	WebhookDisabledCreatorRevoked = "the API key that created it was revoked"
)

// Webhook is an endpoint that is sent the events it subscribes to.
type Webhook struct {
	ID          string
	URL         string
	Description string
	// Events are the subscribed event types, sorted, without duplicates.
	Events []string
	// Secret signs every message. It has to be kept as it is (an HMAC key
	// cannot be checked against a hash), and is shown to users only when it
	// is made.
	Secret string
	// PreviousSecret signs messages too until PreviousSecretExpiresAt, so
	// receivers can switch to a rotated secret without missing a message.
	PreviousSecret          string
	PreviousSecretExpiresAt *time.Time
	// Enabled endpoints are sent messages; DisabledReason says why one is not.
	Enabled        bool
	DisabledReason string
	// ConsecutiveFailures counts the attempts that failed since the last one
	// that succeeded.
	ConsecutiveFailures int
	// CreatedBy is the ID of the key that created it ("" for the operator).
	CreatedBy string
	// Projects is the creator's project scope: the endpoint is sent only
	// events of projects in it.
	Projects  ProjectScope
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Secrets returns the secrets that sign a message sent at now: the current
// one, and the previous one while its grace period lasts.
func (w *Webhook) Secrets(now time.Time) []string {
	s := []string{w.Secret}
	if w.PreviousSecret != "" && w.PreviousSecretExpiresAt != nil && now.Before(*w.PreviousSecretExpiresAt) {
		s = append(s, w.PreviousSecret)
	}
	return s
}

// Subscribes reports whether w is sent events of type event.
func (w *Webhook) Subscribes(event string) bool {
	for _, e := range w.Events {
		if e == event {
			return true
		}
	}
	return false
}

// WebhookDeliveryStatus is where a delivery stands.
type WebhookDeliveryStatus string

// The delivery states.
const (
	// WebhookPending: not yet delivered, and attempts are left.
	WebhookPending WebhookDeliveryStatus = "PENDING"
	// WebhookSucceeded: a 2xx response came.
	WebhookSucceeded WebhookDeliveryStatus = "SUCCEEDED"
	// WebhookFailed: no attempt is left, or the endpoint is gone.
	WebhookFailed WebhookDeliveryStatus = "FAILED"
)

// WebhookDelivery is one message to one endpoint, with how its latest
// attempt went.
type WebhookDelivery struct {
	ID        string
	WebhookID string
	// MessageID is the webhook-id header, the same on every attempt.
	MessageID string
	EventType string
	// EventAt is when the event happened: the message's timestamp, and the
	// order in which one endpoint's messages are sent.
	EventAt time.Time
	// Body is the JSON message.
	Body   []byte
	Status WebhookDeliveryStatus
	// Attempts counts the attempts made so far.
	Attempts int
	// NextAttemptAt is when the next attempt is due; nil when none is.
	NextAttemptAt *time.Time
	LastAttemptAt *time.Time
	// ResponseCode is the latest attempt's HTTP status; 0 if none came.
	ResponseCode int
	// Error says why the latest attempt failed without a response.
	Error   string
	Latency time.Duration
	// RequestExcerpt and ResponseExcerpt are the first bytes of the latest
	// attempt's request and response bodies.
	RequestExcerpt, ResponseExcerpt string
	CreatedAt                       time.Time
	// TraceParent and TraceState are the W3C trace context of the change
	// that queued the message; attempts are sent in that trace.
	TraceParent string
	TraceState  string
}

// WebhookFilter selects endpoints for FindWebhooks, sorted by ID.
type WebhookFilter struct {
	AfterID string
	Limit   int
}

// WebhookDeliveryFilter selects one endpoint's deliveries for
// FindWebhookDeliveries, newest first.
type WebhookDeliveryFilter struct {
	WebhookID string
	// BeforeID pages backwards: only deliveries with a lower ID ("": none).
	BeforeID string
	Limit    int
}

// WebhookRepository stores endpoints and their deliveries. Deliveries of
// events are also written by the stores' other state changes, in their own
// transaction (a transactional outbox): CreateCommand writes command.queued,
// ClaimCommands command.started, FinishCommand, ExpireLeases and the
// cancellation of a queued command by RequestCancel command.finished or
// command.failed, and UpdateAPIKey key.revoked when it revokes the key, one
// per enabled endpoint that subscribes to the event (see WebhookDeliveries).
type WebhookRepository interface {
	// CreateWebhook inserts w and, in the same transaction, appends audit
	// unless it is nil. It returns ECONFLICT if the ID exists.
	CreateWebhook(ctx context.Context, w *Webhook, audit *AuditEntry) error
	// FindWebhookByID returns ENOTFOUND if there is no such endpoint.
	FindWebhookByID(ctx context.Context, id string) (*Webhook, error)
	// FindWebhooks returns endpoints sorted by ID.
	FindWebhooks(ctx context.Context, f WebhookFilter) ([]*Webhook, error)
	// UpdateWebhook loads the endpoint, lets update change it, and saves it,
	// in one transaction, which also appends audit unless it is nil. It
	// returns ENOTFOUND, or update's error unchanged.
	UpdateWebhook(ctx context.Context, id string, update func(*Webhook) error, audit *AuditEntry) (*Webhook, error)
	// DeleteWebhook removes the endpoint and its deliveries and appends audit
	// unless it is nil, in one transaction. It returns ENOTFOUND.
	DeleteWebhook(ctx context.Context, id string, audit *AuditEntry) error
	// FindWebhookDeliveries returns one endpoint's deliveries, newest first.
	FindWebhookDeliveries(ctx context.Context, f WebhookDeliveryFilter) ([]*WebhookDelivery, error)
	// FindWebhookDeliveryByID returns ENOTFOUND if there is no such delivery.
	FindWebhookDeliveryByID(ctx context.Context, id string) (*WebhookDelivery, error)
	// CreateWebhookDeliveries inserts deliveries to existing endpoints and
	// appends audit unless it is nil, in one transaction. It returns
	// ENOTFOUND if an endpoint does not exist.
	CreateWebhookDeliveries(ctx context.Context, ds []*WebhookDelivery, audit *AuditEntry) error
}
