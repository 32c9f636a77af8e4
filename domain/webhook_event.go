package domain

import (
	"encoding/json"
	"time"
)

// WebhookEvent is something that happened that endpoints may be told about.
type WebhookEvent struct {
	// Type is one of the Event* names.
	Type string
	// At is when it happened.
	At time.Time
	// Data is the event's object, encoded as the message's "data".
	Data any
	// ProjectID is the project the event is about; "" for none (key.revoked).
	ProjectID string
	// Trace is the trace context its messages are sent in, unless the
	// context that queues them has its own.
	Trace TraceContext
}

// webhookMessage is the JSON body of every message.
type webhookMessage struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

// Body returns the message's JSON body: {"type", "timestamp", "data"}, the
// timestamp in RFC 3339 with microseconds, in UTC.
func (e WebhookEvent) Body() []byte {
	b, err := json.Marshal(webhookMessage{Type: e.Type, Timestamp: e.At.UTC().Format("2006-01-02T15:04:05.000000Z"), Data: e.Data})
	if err != nil {
		// Data is always one of the event structs below, which encode.
		panic("webhook event " + e.Type + ": " + err.Error())
	}
	return b
}

// WebhookDeliveries returns the deliveries of e to each of ws that is
// enabled, subscribes to e's type and whose project scope admits e, judged
// on project, e's project as it is now (nil if it is gone, or e has none;
// see ProjectOfEvent). Each gets a new ID, which is also its message ID, and
// is due at once (at e.At).
func WebhookDeliveries(e WebhookEvent, ws []*Webhook, project *Project) []*WebhookDelivery {
	var out []*WebhookDelivery
	var body []byte
	for _, w := range ws {
		if !w.Enabled || !w.Subscribes(e.Type) || !w.admitsEvent(e, project) {
			continue
		}
		if body == nil {
			body = e.Body()
		}
		d := newWebhookDelivery(w.ID, "", e.Type, e.At, body, e.At)
		d.TraceParent, d.TraceState = e.Trace.Parent, e.Trace.State
		out = append(out, d)
	}
	return out
}

// newWebhookDelivery returns a pending delivery due at now. An empty
// messageID makes it the delivery's own ID.
func newWebhookDelivery(webhookID, messageID, eventType string, eventAt time.Time, body []byte, now time.Time) *WebhookDelivery {
	now = now.UTC().Truncate(time.Microsecond)
	id := NewID(now)
	if messageID == "" {
		messageID = WebhookMessagePrefix + id
	}
	return &WebhookDelivery{
		ID: id, WebhookID: webhookID, MessageID: messageID, EventType: eventType,
		EventAt: eventAt.UTC().Truncate(time.Microsecond), Body: body,
		Status: WebhookPending, NextAttemptAt: &now, CreatedAt: now,
	}
}

// WebhookMessagePrefix starts every message ID, as Standard Webhooks
// examples do.
const WebhookMessagePrefix = "msg_"

// CommandEventData is the data of the command.* events.
type CommandEventData struct {
	ID        string `json:"id"`
	ProjectID string `json:"projectId"`
	Status    string `json:"status"`
	// SubmittedByID is the key that queued the command.
	SubmittedByID string     `json:"submittedById,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	StartedAt     *time.Time `json:"startedAt,omitempty"`
	FinishedAt    *time.Time `json:"finishedAt,omitempty"`
	ExitCode      *int       `json:"exitCode,omitempty"`
	Signal        string     `json:"signal,omitempty"`
	Reason        string     `json:"reason,omitempty"`
	OutputBytes   int64      `json:"outputBytes"`
	Truncated     bool       `json:"truncated"`
}

// CommandEvent is the event of c reaching its current state: command.queued
// at its creation, command.started at its start, or at its end
// command.finished when it SUCCEEDED and command.failed otherwise.
func CommandEvent(c *Command) WebhookEvent {
	t, at := EventCommandFailed, c.CreatedAt
	switch c.Status {
	case CommandQueued:
		t = EventCommandQueued
	case CommandRunning:
		t = EventCommandStarted
	case CommandSucceeded:
		t = EventCommandFinished
	case CommandFailed, CommandCancelled, CommandTimedOut, CommandInterrupted:
	}
	switch {
	case c.Status.Final() && c.FinishedAt != nil:
		at = *c.FinishedAt
	case c.Status == CommandRunning && c.StartedAt != nil:
		at = *c.StartedAt
	}
	return WebhookEvent{Type: t, At: at, ProjectID: c.ProjectID, Trace: TraceContext{Parent: c.TraceParent, State: c.TraceState}, Data: CommandEventData{
		ID: c.ID, ProjectID: c.ProjectID, Status: string(c.Status), SubmittedByID: c.KeyID,
		CreatedAt: c.CreatedAt.UTC(), StartedAt: utcMicros(c.StartedAt), FinishedAt: utcMicros(c.FinishedAt),
		ExitCode: c.ExitCode, Signal: c.Signal, Reason: c.Reason, OutputBytes: c.OutputBytes, Truncated: c.Truncated,
	}}
}

// KeyEventData is the data of key.revoked.
type KeyEventData struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	RevokedAt time.Time `json:"revokedAt"`
}

// KeyRevokedEvent is the event of k having been revoked.
func KeyRevokedEvent(k *APIKey) WebhookEvent {
	var at time.Time
	if k.RevokedAt != nil {
		at = k.RevokedAt.UTC()
	}
	return WebhookEvent{Type: EventKeyRevoked, At: at, Data: KeyEventData{ID: k.ID, Name: k.Name, RevokedAt: at}}
}

// PingEventData is the data of webhook.ping.
type PingEventData struct {
	WebhookID string `json:"webhookId"`
}
