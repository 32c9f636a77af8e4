package telemetry

import (
	"context"

	"github.com/rdev-hq/rdev/domain"
)

// WebhookSender wraps s so that every attempt is counted and timed by its
// outcome: "delivered" (2xx), "gone" (410), "error" (no response: refused
// address, connection failure, timeout) or "failed" (any other status).
func (m *Metrics) WebhookSender(s domain.WebhookSender) domain.WebhookSender {
	return &webhookSender{next: s, m: m}
}

type webhookSender struct {
	next domain.WebhookSender
	m    *Metrics
}

// Send implements domain.WebhookSender.
func (w *webhookSender) Send(ctx context.Context, a domain.WebhookAttempt) domain.WebhookResponse {
	resp := w.next.Send(ctx, a)
	w.m.ObserveWebhookDelivery(webhookOutcome(resp), resp.Latency)
	return resp
}

func webhookOutcome(r domain.WebhookResponse) string {
	switch {
	case r.Err != nil:
		return "error"
	case r.Outcome() == domain.WebhookDelivered:
		return "delivered"
	case r.Outcome() == domain.WebhookGone:
		return "gone"
	}
	return "failed"
}
