package storetest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// WebhookStore is a store of endpoints whose changes append audit entries
// and whose other state changes write the webhook outbox.
type WebhookStore interface {
	domain.WebhookRepository
	domain.AuditRepository
	domain.CommandRepository
	domain.APIKeyRepository
}

// TestWebhookRepository runs the domain.WebhookRepository contract. newStore
// is called once per subtest and must return an empty store that no other
// subtest uses; subtests run in parallel.
func TestWebhookRepository(t *testing.T, newStore func(t *testing.T) WebhookStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, func(*testing.T) WebhookStore)
	}{
		{"CreateWebhook", testCreateWebhook},
		{"FindWebhooks", testFindWebhooks},
		{"UpdateWebhook", testUpdateWebhook},
		{"UpdateWebhookConcurrently", testUpdateWebhookConcurrently},
		{"DeleteWebhook", testDeleteWebhook},
		{"Deliveries", testWebhookDeliveries},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore)
		})
	}
}

func newWebhook() *domain.Webhook {
	now := at(time.Now())
	return &domain.Webhook{
		ID: idAt(now), URL: "https://hooks.example.com/rdev", Events: []string{domain.EventCommandFinished},
		Secret: domain.NewWebhookSecret(), Enabled: true, CreatedAt: now, UpdatedAt: now,
	}
}

func fullWebhook() *domain.Webhook {
	w := newWebhook()
	w.URL = "https://hooks.example.com/rdev?team=ä"
	w.Description = "CI notifications ✓"
	w.Events = []string{domain.EventCommandFailed, domain.EventCommandFinished, domain.EventKeyRevoked}
	w.PreviousSecret = domain.NewWebhookSecret()
	w.PreviousSecretExpiresAt = ptr(at(time.Now().Add(time.Hour)))
	w.Enabled, w.DisabledReason, w.ConsecutiveFailures = false, domain.WebhookDisabledFailing, 7
	w.CreatedBy = idAt(time.Now())
	w.Projects = mustProjectScope([]string{"web"}, []string{"team=payments"})
	return w
}

func webhookAudit(action, target string) *domain.AuditEntry {
	return &domain.AuditEntry{At: time.Now(), Actor: "tester", Action: action, Target: target, Outcome: domain.AuditSuccess}
}

func mustCreateWebhook(tb testing.TB, ctx context.Context, s WebhookStore, w *domain.Webhook) {
	tb.Helper()
	if err := s.CreateWebhook(ctx, w, nil); err != nil {
		tb.Fatalf("CreateWebhook: %v", err)
	}
}

// auditActions returns the actions of every entry in the log, oldest first.
func auditActions(tb testing.TB, ctx context.Context, s WebhookStore) []string {
	tb.Helper()
	es, err := s.ReadAuditChain(ctx, 0, 1000)
	if err != nil {
		tb.Fatalf("ReadAuditChain: %v", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" "+e.Target)
	}
	return out
}

func testCreateWebhook(t *testing.T, newStore func(*testing.T) WebhookStore) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), t.Context()
		for _, w := range []*domain.Webhook{fullWebhook(), newWebhook()} {
			if err := s.CreateWebhook(ctx, w, webhookAudit(domain.AuditWebhookCreate, w.ID)); err != nil {
				t.Fatalf("CreateWebhook: %v", err)
			}
			got, err := s.FindWebhookByID(ctx, w.ID)
			if err != nil {
				t.Fatalf("FindWebhookByID: %v", err)
			}
			if diff := cmp.Diff(w, got, cmpOpts...); diff != "" {
				t.Errorf("stored webhook differs (-created +found):\n%s", diff)
			}
			assertUTC(t, "webhook", &got.CreatedAt, &got.UpdatedAt, got.PreviousSecretExpiresAt)
			if log := auditActions(t, ctx, s); log[len(log)-1] != domain.AuditWebhookCreate+" "+w.ID {
				t.Errorf("audit log %v does not end with the create", log)
			}
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), t.Context()
		w := newWebhook()
		mustCreateWebhook(t, ctx, s, w)
		err := s.CreateWebhook(ctx, w, webhookAudit(domain.AuditWebhookCreate, w.ID))
		if code := domain.ErrorCode(err); code != domain.ECONFLICT {
			t.Fatalf("CreateWebhook(same ID) = %v (code %q), want %q", err, code, domain.ECONFLICT)
		}
		if got := auditActions(t, ctx, s); len(got) != 0 {
			t.Errorf("a refused create appended %v to the audit log", got)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), t.Context()
		_, err := s.FindWebhookByID(ctx, idAt(time.Now()))
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("FindWebhookByID(unknown) = %v (code %q), want %q", err, code, domain.ENOTFOUND)
		}
	})
}

func testFindWebhooks(t *testing.T, newStore func(*testing.T) WebhookStore) {
	s, ctx := newStore(t), t.Context()
	var ids []string
	base := time.Now()
	for i := range 5 {
		w := newWebhook()
		w.ID = idAt(base.Add(time.Duration(i) * time.Millisecond))
		mustCreateWebhook(t, ctx, s, w)
		ids = append(ids, w.ID)
	}
	page := func(after string, limit int) []string {
		t.Helper()
		ws, err := s.FindWebhooks(ctx, domain.WebhookFilter{AfterID: after, Limit: limit})
		if err != nil {
			t.Fatalf("FindWebhooks: %v", err)
		}
		var out []string
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}
	if diff := cmp.Diff(ids, page("", 0)); diff != "" {
		t.Errorf("all webhooks (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ids[:2], page("", 2)); diff != "" {
		t.Errorf("first page (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ids[2:4], page(ids[1], 2)); diff != "" {
		t.Errorf("second page (-want +got):\n%s", diff)
	}
	if got := page(ids[4], 2); len(got) != 0 {
		t.Errorf("after the last: %v, want none", got)
	}
}

func testUpdateWebhook(t *testing.T, newStore func(*testing.T) WebhookStore) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), t.Context()
		w := newWebhook()
		mustCreateWebhook(t, ctx, s, w)
		want := fullWebhook()
		want.ID, want.CreatedAt = w.ID, w.CreatedAt
		got, err := s.UpdateWebhook(ctx, w.ID, func(w *domain.Webhook) error {
			*w = *want
			return nil
		}, webhookAudit(domain.AuditWebhookUpdate, w.ID))
		if err != nil {
			t.Fatalf("UpdateWebhook: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("returned webhook differs (-want +got):\n%s", diff)
		}
		found, err := s.FindWebhookByID(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, found, cmpOpts...); diff != "" {
			t.Errorf("stored webhook differs (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{domain.AuditWebhookUpdate + " " + w.ID}, auditActions(t, ctx, s)); diff != "" {
			t.Errorf("audit log (-want +got):\n%s", diff)
		}
	})

	t.Run("UpdateFails", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), t.Context()
		w := newWebhook()
		mustCreateWebhook(t, ctx, s, w)
		refused := domain.Errorf(domain.ECONFLICT, "no")
		_, err := s.UpdateWebhook(ctx, w.ID, func(w *domain.Webhook) error {
			w.URL = "https://elsewhere.example.com/"
			return refused
		}, webhookAudit(domain.AuditWebhookUpdate, w.ID))
		if !errors.Is(err, refused) {
			t.Fatalf("UpdateWebhook = %v, want the update's error unchanged", err)
		}
		found, err := s.FindWebhookByID(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if found.URL != w.URL {
			t.Errorf("a failed update saved URL %q", found.URL)
		}
		if got := auditActions(t, ctx, s); len(got) != 0 {
			t.Errorf("a failed update appended %v to the audit log", got)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), t.Context()
		_, err := s.UpdateWebhook(ctx, idAt(time.Now()), func(*domain.Webhook) error { return nil }, nil)
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("UpdateWebhook(unknown) = %v (code %q), want %q", err, code, domain.ENOTFOUND)
		}
	})
}

// Concurrent updates of one endpoint never lose each other's changes, as
// the delivery worker's failure counting needs.
func testUpdateWebhookConcurrently(t *testing.T, newStore func(*testing.T) WebhookStore) {
	s, ctx := newStore(t), t.Context()
	w := newWebhook()
	mustCreateWebhook(t, ctx, s, w)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			_, err := s.UpdateWebhook(ctx, w.ID, func(w *domain.Webhook) error {
				w.ConsecutiveFailures++
				return nil
			}, nil)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("UpdateWebhook: %v", err)
		}
	}
	got, err := s.FindWebhookByID(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ConsecutiveFailures != n {
		t.Errorf("ConsecutiveFailures = %d after %d concurrent increments", got.ConsecutiveFailures, n)
	}
}

func testDeleteWebhook(t *testing.T, newStore func(*testing.T) WebhookStore) {
	s, ctx := newStore(t), t.Context()
	w, other := newWebhook(), newWebhook()
	other.ID = idAt(time.Now().Add(time.Millisecond))
	mustCreateWebhook(t, ctx, s, w)
	mustCreateWebhook(t, ctx, s, other)
	d, kept := newDelivery(w.ID, time.Now()), newDelivery(other.ID, time.Now())
	if err := s.CreateWebhookDeliveries(ctx, []*domain.WebhookDelivery{d, kept}, nil); err != nil {
		t.Fatalf("CreateWebhookDeliveries: %v", err)
	}
	if err := s.DeleteWebhook(ctx, w.ID, webhookAudit(domain.AuditWebhookDelete, w.ID)); err != nil {
		t.Fatalf("DeleteWebhook: %v", err)
	}
	if _, err := s.FindWebhookByID(ctx, w.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("FindWebhookByID(deleted) = %v, want ENOTFOUND", err)
	}
	if _, err := s.FindWebhookDeliveryByID(ctx, d.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("FindWebhookDeliveryByID(of deleted webhook) = %v, want ENOTFOUND", err)
	}
	if _, err := s.FindWebhookDeliveryByID(ctx, kept.ID); err != nil {
		t.Errorf("the other webhook's delivery: %v", err)
	}
	err := s.DeleteWebhook(ctx, w.ID, webhookAudit(domain.AuditWebhookDelete, w.ID))
	if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
		t.Errorf("DeleteWebhook(again) = %v (code %q), want %q", err, code, domain.ENOTFOUND)
	}
	if diff := cmp.Diff([]string{domain.AuditWebhookDelete + " " + w.ID}, auditActions(t, ctx, s)); diff != "" {
		t.Errorf("audit log (-want +got):\n%s", diff)
	}
}

func newDelivery(webhookID string, t time.Time) *domain.WebhookDelivery {
	t = at(t)
	id := idAt(t)
	return &domain.WebhookDelivery{
		ID: id, WebhookID: webhookID, MessageID: domain.WebhookMessagePrefix + id, EventType: domain.EventCommandFinished,
		EventAt: t, Body: []byte(`{"type":"command.finished","timestamp":"x","data":{"id":"ä"}}`),
		Status: domain.WebhookPending, NextAttemptAt: &t, CreatedAt: t,
	}
}

func testWebhookDeliveries(t *testing.T, newStore func(*testing.T) WebhookStore) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), t.Context()
		w := newWebhook()
		mustCreateWebhook(t, ctx, s, w)
		base := time.Now()
		var ds []*domain.WebhookDelivery
		for i := range 4 {
			ds = append(ds, newDelivery(w.ID, base.Add(time.Duration(i)*time.Millisecond)))
		}
		last := ds[3]
		last.Status, last.NextAttemptAt, last.Attempts = domain.WebhookFailed, nil, 9
		last.LastAttemptAt, last.ResponseCode, last.Error = ptr(at(base.Add(time.Hour))), 503, "connection refused"
		last.Latency, last.RequestExcerpt, last.ResponseExcerpt = 1234567*time.Microsecond, `{"type"`, "busy"
		if err := s.CreateWebhookDeliveries(ctx, ds, webhookAudit(domain.AuditWebhookTest, w.ID)); err != nil {
			t.Fatalf("CreateWebhookDeliveries: %v", err)
		}
		got, err := s.FindWebhookDeliveryByID(ctx, last.ID)
		if err != nil {
			t.Fatalf("FindWebhookDeliveryByID: %v", err)
		}
		if diff := cmp.Diff(last, got, cmpOpts...); diff != "" {
			t.Errorf("stored delivery differs (-created +found):\n%s", diff)
		}
		assertUTC(t, "delivery", &got.EventAt, &got.CreatedAt, got.LastAttemptAt)

		page, err := s.FindWebhookDeliveries(ctx, domain.WebhookDeliveryFilter{WebhookID: w.ID, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*domain.WebhookDelivery{ds[3], ds[2]}, page, cmpOpts...); diff != "" {
			t.Errorf("first page, newest first (-want +got):\n%s", diff)
		}
		page, err = s.FindWebhookDeliveries(ctx, domain.WebhookDeliveryFilter{WebhookID: w.ID, BeforeID: ds[2].ID})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*domain.WebhookDelivery{ds[1], ds[0]}, page, cmpOpts...); diff != "" {
			t.Errorf("second page (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{domain.AuditWebhookTest + " " + w.ID}, auditActions(t, ctx, s)); diff != "" {
			t.Errorf("audit log (-want +got):\n%s", diff)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		s, ctx := newStore(t), t.Context()
		w := newWebhook()
		mustCreateWebhook(t, ctx, s, w)
		good, bad := newDelivery(w.ID, time.Now()), newDelivery(idAt(time.Now()), time.Now().Add(time.Millisecond))
		err := s.CreateWebhookDeliveries(ctx, []*domain.WebhookDelivery{good, bad}, webhookAudit(domain.AuditWebhookTest, w.ID))
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("CreateWebhookDeliveries(unknown webhook) = %v (code %q), want %q", err, code, domain.ENOTFOUND)
		}
		if _, err := s.FindWebhookDeliveryByID(ctx, good.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("the delivery to the existing webhook was stored anyway: %v", err)
		}
		if got := auditActions(t, ctx, s); len(got) != 0 {
			t.Errorf("a failed insert appended %v to the audit log", got)
		}
	})
}
