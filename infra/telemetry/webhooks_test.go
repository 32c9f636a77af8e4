package telemetry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rdev-hq/rdev/domain"
)

type cannedSender []domain.WebhookResponse

func (c *cannedSender) Send(context.Context, domain.WebhookAttempt) domain.WebhookResponse {
	r := (*c)[0]
	*c = (*c)[1:]
	return r
}

func TestMetrics_WebhookSender(t *testing.T) {
	m := New()
	canned := cannedSender{
		{StatusCode: 204, Latency: time.Millisecond},
		{StatusCode: 204, Latency: time.Millisecond},
		{StatusCode: 500},
		{StatusCode: 410},
		{Err: errors.New("refused")},
	}
	s := m.WebhookSender(&canned)
	for range 5 {
		s.Send(t.Context(), domain.WebhookAttempt{})
	}
	for outcome, want := range map[string]float64{"delivered": 2, "failed": 1, "gone": 1, "error": 1} {
		if got := testutil.ToFloat64(m.webhookDeliveries.WithLabelValues(outcome)); got != want {
			t.Errorf("rdev_webhook_deliveries_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
}
