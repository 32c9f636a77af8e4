package domain

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

// queueRepo adds the delivery queue to webhookRepo: every pending, due
// delivery of an enabled endpoint is claimable; leases are not modelled.
type queueRepo struct{ *webhookRepo }

func (q queueRepo) ClaimWebhookDeliveries(_ context.Context, r WebhookClaimRequest) ([]WebhookClaim, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []WebhookClaim
	seen := map[string]bool{}
	for _, d := range q.deliveries {
		w := q.webhooks[d.WebhookID]
		if d.Status != WebhookPending || d.NextAttemptAt.After(r.Now) || !w.Enabled || seen[w.ID] || len(out) == r.Max {
			continue
		}
		seen[w.ID] = true
		c := *d
		out = append(out, WebhookClaim{Delivery: &c, Webhook: cloneWebhook(w)})
	}
	return out, nil
}

func (q queueRepo) RecordWebhookAttempt(_ context.Context, _, id string, record func(*WebhookDelivery, *Webhook) error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, d := range q.deliveries {
		if d.ID == id {
			return record(d, q.webhooks[d.WebhookID])
		}
	}
	return deliveryNotFound(id)
}

// scriptedSender answers each attempt with the next response of its script
// and records the attempts.
type scriptedSender struct {
	mu       sync.Mutex
	script   []WebhookResponse
	attempts []WebhookAttempt
}

func (s *scriptedSender) Send(_ context.Context, a WebhookAttempt) WebhookResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts = append(s.attempts, a)
	r := s.script[0]
	if len(s.script) > 1 {
		s.script = s.script[1:]
	}
	return r
}

func newTestWorker(t *testing.T, script []WebhookResponse, disableAfter int) (*WebhookWorker, *scriptedSender, *webhookRepo, *Webhook, *WebhookDelivery, *clock) {
	t.Helper()
	s, repo, clk := newTestWebhookService(false)
	w, _ := mustCreateWebhook(t, s, CreateWebhook{URL: "https://hooks.example.com/", Events: []string{EventCommandQueued}})
	d, err := s.Test(operatorContext(t), w.ID)
	if err != nil {
		t.Fatal(err)
	}
	sender := &scriptedSender{script: script}
	worker := NewWebhookWorker(queueRepo{repo}, sender, WebhookWorkerConfig{
		Owner: "w1", DisableAfter: disableAfter,
		Policy: WebhookRetryPolicy{Schedule: []time.Duration{5 * time.Second, 5 * time.Minute}},
	})
	worker.now = clk.Now
	return worker, sender, repo, w, d, clk
}

func mustRunOnce(t *testing.T, w *WebhookWorker, want int) {
	t.Helper()
	n, err := w.RunOnce(t.Context())
	if err != nil || n != want {
		t.Fatalf("RunOnce = %d, %v; want %d sent", n, err, want)
	}
}

func (r *webhookRepo) delivery(id string) WebhookDelivery {
	d, _ := r.FindWebhookDeliveryByID(context.Background(), id)
	return *d
}

func TestWebhookWorker_RetrySchedule(t *testing.T) {
	refused := WebhookResponse{Err: errors.New("dial tcp 203.0.113.9:443: connection refused"), Latency: time.Millisecond}
	worker, sender, repo, w, d, clk := newTestWorker(t, []WebhookResponse{refused, {StatusCode: 500, ResponseExcerpt: "oops"}, {StatusCode: 502}}, -1)
	start := clk.Now()

	mustRunOnce(t, worker, 1)
	got := repo.delivery(d.ID)
	if got.Status != WebhookPending || got.Attempts != 1 || !got.NextAttemptAt.Equal(start.Add(5*time.Second)) ||
		got.Error != refused.Err.Error() || got.ResponseCode != 0 || !got.LastAttemptAt.Equal(start) {
		t.Fatalf("after the first failure: %+v", got)
	}
	// Not due yet: nothing is sent.
	clk.Advance(4 * time.Second)
	mustRunOnce(t, worker, 0)

	clk.Advance(time.Second)
	mustRunOnce(t, worker, 1)
	got = repo.delivery(d.ID)
	if got.Attempts != 2 || !got.NextAttemptAt.Equal(clk.Now().Add(5*time.Minute)) || got.ResponseCode != 500 ||
		got.Error != "" || got.ResponseExcerpt != "oops" {
		t.Fatalf("after the second failure: %+v", got)
	}

	clk.Advance(5 * time.Minute)
	mustRunOnce(t, worker, 1)
	got = repo.delivery(d.ID)
	if got.Status != WebhookFailed || got.Attempts != 3 || got.NextAttemptAt != nil || got.ResponseCode != 502 {
		t.Fatalf("after the schedule ran out: %+v", got)
	}
	if wh, _ := repo.FindWebhookByID(t.Context(), w.ID); wh.ConsecutiveFailures != 3 || !wh.Enabled {
		t.Errorf("endpoint = %+v, want 3 failures and still enabled (DisableAfter < 0)", wh)
	}
	clk.Advance(24 * time.Hour)
	mustRunOnce(t, worker, 0)

	// Every attempt carried the same message ID and body, signed with the
	// endpoint's secret.
	for i, a := range sender.attempts {
		if a.MessageID != d.MessageID || string(a.Body) != string(d.Body) || !slices.Equal(a.Secrets, []string{w.Secret}) || a.URL != w.URL {
			t.Errorf("attempt %d = %+v", i, a)
		}
	}
}

func TestWebhookWorker_Outcomes(t *testing.T) {
	t.Run("Delivered", func(t *testing.T) {
		worker, _, repo, w, d, _ := newTestWorker(t, []WebhookResponse{{StatusCode: 204, Latency: 42 * time.Millisecond}}, 0)
		if _, err := repo.UpdateWebhook(t.Context(), w.ID, func(w *Webhook) error { w.ConsecutiveFailures = 7; return nil }, nil); err != nil {
			t.Fatal(err)
		}
		mustRunOnce(t, worker, 1)
		if got := repo.delivery(d.ID); got.Status != WebhookSucceeded || got.NextAttemptAt != nil || got.Latency != 42*time.Millisecond {
			t.Errorf("delivery = %+v", got)
		}
		if wh, _ := repo.FindWebhookByID(t.Context(), w.ID); wh.ConsecutiveFailures != 0 {
			t.Errorf("failures = %d after a success, want 0", wh.ConsecutiveFailures)
		}
	})

	t.Run("RetryAfter", func(t *testing.T) {
		worker, _, repo, _, d, clk := newTestWorker(t, []WebhookResponse{{StatusCode: http.StatusTooManyRequests, RetryAfter: time.Hour}}, 0)
		mustRunOnce(t, worker, 1)
		if got := repo.delivery(d.ID); !got.NextAttemptAt.Equal(clk.Now().Add(time.Hour)) {
			t.Errorf("next attempt at %v, want the hour Retry-After asked for", got.NextAttemptAt)
		}
	})

	t.Run("Gone", func(t *testing.T) {
		worker, _, repo, w, d, _ := newTestWorker(t, []WebhookResponse{{StatusCode: http.StatusGone}}, 0)
		mustRunOnce(t, worker, 1)
		if got := repo.delivery(d.ID); got.Status != WebhookFailed || got.NextAttemptAt != nil {
			t.Errorf("delivery = %+v, want FAILED", got)
		}
		if wh, _ := repo.FindWebhookByID(t.Context(), w.ID); wh.Enabled || wh.DisabledReason != WebhookDisabledGone {
			t.Errorf("endpoint = %+v, want disabled as gone", wh)
		}
	})

	t.Run("Redirect", func(t *testing.T) {
		worker, _, repo, _, d, _ := newTestWorker(t, []WebhookResponse{{StatusCode: http.StatusFound}}, 0)
		mustRunOnce(t, worker, 1)
		if got := repo.delivery(d.ID); got.Status != WebhookPending || got.NextAttemptAt == nil {
			t.Errorf("delivery = %+v, want a redirect retried like a failure", got)
		}
	})

	t.Run("DisableAfter", func(t *testing.T) {
		worker, _, repo, w, d, clk := newTestWorker(t, []WebhookResponse{{StatusCode: 500}}, 2)
		mustRunOnce(t, worker, 1)
		if wh, _ := repo.FindWebhookByID(t.Context(), w.ID); !wh.Enabled {
			t.Fatal("disabled after one failure")
		}
		clk.Advance(time.Minute)
		mustRunOnce(t, worker, 1)
		wh, _ := repo.FindWebhookByID(t.Context(), w.ID)
		if wh.Enabled || wh.DisabledReason != WebhookDisabledFailing || wh.ConsecutiveFailures != 2 {
			t.Errorf("endpoint = %+v, want disabled after 2 failures", wh)
		}
		// A disabled endpoint is sent nothing, though its delivery is due.
		clk.Advance(time.Hour)
		mustRunOnce(t, worker, 0)
		if got := repo.delivery(d.ID); got.Status != WebhookPending || got.Attempts != 2 {
			t.Errorf("delivery = %+v, want left pending", got)
		}
	})

	t.Run("RotationSignsWithBoth", func(t *testing.T) {
		s, repo, clk := newTestWebhookService(false)
		w, old := mustCreateWebhook(t, s, CreateWebhook{URL: "https://hooks.example.com/", Events: []string{EventCommandQueued}})
		_, secret, err := s.RotateSecret(operatorContext(t), w.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Test(operatorContext(t), w.ID); err != nil {
			t.Fatal(err)
		}
		sender := &scriptedSender{script: []WebhookResponse{{StatusCode: 200}}}
		worker := NewWebhookWorker(queueRepo{repo}, sender, WebhookWorkerConfig{Owner: "w1"})
		worker.now = clk.Now
		mustRunOnce(t, worker, 1)
		if got := sender.attempts[0].Secrets; !slices.Equal(got, []string{secret, old}) {
			t.Errorf("signed with %v, want the new and the old secret", got)
		}
	})
}
