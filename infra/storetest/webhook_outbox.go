package storetest

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// TestWebhookOutbox checks that the state changes endpoints subscribe to
// write their delivery rows in their own transaction: one per enabled,
// subscribed endpoint, due at once, with a message body that names the
// change. newStore is called once per subtest.
func TestWebhookOutbox(t *testing.T, newStore func(t *testing.T) WebhookStore) {
	t.Run("Commands", func(t *testing.T) {
		t.Parallel()
		testOutboxCommands(t, newStore(t))
	})
	t.Run("KeyRevoked", func(t *testing.T) {
		t.Parallel()
		testOutboxKeyRevoked(t, newStore(t))
	})
	t.Run("KeyRevokedTree", func(t *testing.T) {
		t.Parallel()
		testOutboxKeyRevokedTree(t, newStore(t))
	})
	t.Run("RevokedCreatorsEndpoints", func(t *testing.T) {
		t.Parallel()
		testOutboxRevokedCreatorsEndpoints(t, newStore(t))
	})
	t.Run("ExpiredLease", func(t *testing.T) {
		t.Parallel()
		testOutboxExpiredLease(t, newStore(t))
	})
	t.Run("ProjectScope", func(t *testing.T) {
		t.Parallel()
		testOutboxProjectScope(t, newStore(t))
	})
}

// testOutboxProjectScope checks that an endpoint limited to projects is
// written only the events of projects it names (without a project
// repository, its selectors match nothing), and no key.revoked.
func testOutboxProjectScope(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	scoped := newWebhook()
	scoped.Events = domain.WebhookEvents
	scoped.Projects = mustProjectScope([]string{"web"}, []string{"team=payments"})
	mustCreateWebhook(t, ctx, s, scoped)
	web, api := newCommand("web", 1), newCommand("api", 2)
	mustCreateCommand(t, ctx, s, web)
	mustCreateCommand(t, ctx, s, api)
	mustRequestCancel(t, ctx, s, api.ID)
	want := []string{"command.queued " + web.ID + " QUEUED"}
	if diff := cmp.Diff(want, messageSummary(outboxOf(t, ctx, s, scoped.ID))); diff != "" {
		t.Errorf("scoped endpoint's messages (-want +got):\n%s", diff)
	}
}

// outboxWebhooks creates three endpoints: "progress" subscribes to the
// command's progress, "failures" to failures and revocations, and "off"
// to everything but is disabled.
func outboxWebhooks(tb testing.TB, ctx context.Context, s WebhookStore) (progress, failures, off *domain.Webhook) {
	tb.Helper()
	base := time.Now()
	progress, failures, off = newWebhook(), newWebhook(), newWebhook()
	progress.ID, failures.ID, off.ID = idAt(base), idAt(base.Add(time.Millisecond)), idAt(base.Add(2*time.Millisecond))
	progress.Events = []string{domain.EventCommandFinished, domain.EventCommandQueued, domain.EventCommandStarted}
	failures.Events = []string{domain.EventCommandFailed, domain.EventKeyRevoked}
	off.Events, off.Enabled, off.DisabledReason = domain.WebhookEvents, false, domain.WebhookDisabledByUser
	for _, w := range []*domain.Webhook{progress, failures, off} {
		mustCreateWebhook(tb, ctx, s, w)
	}
	return progress, failures, off
}

// outboxMessage is a delivery's body, decoded.
type outboxMessage struct {
	Type      string
	Timestamp time.Time
	Data      map[string]any
}

// outboxOf returns an endpoint's deliveries, oldest first, checking that
// each is pending, due at its event's time, and carries its ID as message
// ID and a body of its type.
func outboxOf(tb testing.TB, ctx context.Context, s WebhookStore, webhookID string) []outboxMessage {
	tb.Helper()
	ds, err := s.FindWebhookDeliveries(ctx, domain.WebhookDeliveryFilter{WebhookID: webhookID})
	if err != nil {
		tb.Fatalf("FindWebhookDeliveries: %v", err)
	}
	var out []outboxMessage
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		var m outboxMessage
		if err := json.Unmarshal(d.Body, &m); err != nil {
			tb.Fatalf("delivery %s: body %s: %v", d.ID, d.Body, err)
		}
		if d.Status != domain.WebhookPending || d.NextAttemptAt == nil || !d.NextAttemptAt.Equal(d.EventAt) ||
			d.MessageID != domain.WebhookMessagePrefix+d.ID || d.EventType != m.Type || !m.Timestamp.Equal(d.EventAt) || d.Attempts != 0 {
			tb.Errorf("delivery %+v (body %s) is not a fresh delivery of its event", d, d.Body)
		}
		out = append(out, m)
	}
	return out
}

func messageSummary(ms []outboxMessage) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Type+" "+m.Data["id"].(string)+" "+m.Data["status"].(string))
	}
	return out
}

func testOutboxCommands(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	progress, failures, off := outboxWebhooks(t, ctx, s)

	ok, cancelled := newCommand("p", 1), newCommand("p", 2)
	mustCreateCommand(t, ctx, s, ok)
	// A refused change writes no rows.
	if err := s.CreateCommand(ctx, ok, nil); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("CreateCommand(again) = %v, want ECONFLICT", err)
	}
	claimed := mustClaim(t, ctx, s, claimRequest("d1", 1, 0))
	if len(claimed) != 1 || claimed[0].ID != ok.ID {
		t.Fatalf("claimed %v, want %s", commandIDs(claimed), ok.ID)
	}
	finished := mustFinish(t, ctx, s, claimed[0], succeeded())
	mustCreateCommand(t, ctx, s, cancelled)
	mustRequestCancel(t, ctx, s, cancelled.ID)

	got := outboxOf(t, ctx, s, progress.ID)
	want := []string{
		"command.queued " + ok.ID + " QUEUED", "command.started " + ok.ID + " RUNNING",
		"command.finished " + ok.ID + " SUCCEEDED", "command.queued " + cancelled.ID + " QUEUED",
	}
	if diff := cmp.Diff(want, messageSummary(got)); diff != "" {
		t.Errorf("progress endpoint's messages (-want +got):\n%s", diff)
	}
	if len(got) == 4 {
		if !got[2].Timestamp.Equal(*finished.FinishedAt) || got[2].Data["exitCode"] != 0.0 || got[2].Data["projectId"] != "p" {
			t.Errorf("command.finished = %+v, want the finish's time, exit code 0 and project p", got[2])
		}
	}
	if diff := cmp.Diff([]string{"command.failed " + cancelled.ID + " CANCELLED"}, messageSummary(outboxOf(t, ctx, s, failures.ID))); diff != "" {
		t.Errorf("failures endpoint's messages (-want +got):\n%s", diff)
	}
	if got := outboxOf(t, ctx, s, off.ID); len(got) != 0 {
		t.Errorf("the disabled endpoint got %v", messageSummary(got))
	}
}

func testOutboxKeyRevoked(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	progress, failures, _ := outboxWebhooks(t, ctx, s)
	k := newAPIKey()
	if err := s.CreateAPIKey(ctx, k, nil); err != nil {
		t.Fatal(err)
	}
	revoke := func(k *domain.APIKey) error {
		if k.RevokedAt == nil {
			k.RevokedAt = ptr(at(time.Now()))
		}
		return nil
	}
	// Changing a key is no event; revoking it is, once.
	if _, err := s.UpdateAPIKey(ctx, k.ID, func(k *domain.APIKey) error { k.Name = "renamed"; return nil }, nil); err != nil {
		t.Fatal(err)
	}
	revoked, err := s.UpdateAPIKey(ctx, k.ID, revoke, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateAPIKey(ctx, k.ID, revoke, nil); err != nil {
		t.Fatal(err)
	}
	got := outboxOf(t, ctx, s, failures.ID)
	if len(got) != 1 || got[0].Type != domain.EventKeyRevoked || got[0].Data["id"] != k.ID || got[0].Data["name"] != "renamed" ||
		!got[0].Timestamp.Equal(*revoked.RevokedAt) {
		t.Errorf("messages %+v, want one key.revoked of %s at %v", got, k.ID, revoked.RevokedAt)
	}
	if got := outboxOf(t, ctx, s, progress.ID); len(got) != 0 {
		t.Errorf("an endpoint not subscribed to key.revoked got %+v", got)
	}
}

// testOutboxKeyRevokedTree checks that revoking a tree of keys sends one
// key.revoked per key it revoked, none for a key revoked before.
func testOutboxKeyRevokedTree(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	_, failures, _ := outboxWebhooks(t, ctx, s)
	kt := newAPIKeyTree(t, s)
	if _, err := s.UpdateAPIKey(ctx, kt.b.ID, func(k *domain.APIKey) error { k.RevokedAt = ptr(at(time.Now())); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.RevokeAPIKeyTree(ctx, kt.root.ID, at(time.Now()), func(*domain.APIKey) error { return nil }, noAudit); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range outboxOf(t, ctx, s, failures.ID) {
		id, _ := m.Data["id"].(string)
		got = append(got, m.Type+" "+id)
	}
	want := []string{"key.revoked " + kt.b.ID, "key.revoked " + kt.root.ID, "key.revoked " + kt.a.ID, "key.revoked " + kt.a1.ID}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failures endpoint's messages (-want +got):\n%s", diff)
	}
}

// testOutboxRevokedCreatorsEndpoints checks that revoking a tree of keys
// disables the endpoints its keys created, before its key.revoked events
// are queued, and no other endpoint.
func testOutboxRevokedCreatorsEndpoints(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	kt := newAPIKeyTree(t, s)
	byChild, byOther := newWebhook(), newWebhook()
	byChild.Events, byChild.CreatedBy = domain.WebhookEvents, kt.a1.ID
	byOther.Events, byOther.CreatedBy = domain.WebhookEvents, kt.b.ID
	mustCreateWebhook(t, ctx, s, byChild)
	mustCreateWebhook(t, ctx, s, byOther)
	if _, _, err := s.RevokeAPIKeyTree(ctx, kt.a.ID, at(time.Now()), func(*domain.APIKey) error { return nil }, noAudit); err != nil {
		t.Fatal(err)
	}
	got, err := s.FindWebhookByID(ctx, byChild.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Enabled || got.DisabledReason != domain.WebhookDisabledCreatorRevoked {
		t.Errorf("the endpoint of a revoked key: enabled %v, reason %q; want disabled, %q", got.Enabled, got.DisabledReason, domain.WebhookDisabledCreatorRevoked)
	}
	if msgs := outboxOf(t, ctx, s, byChild.ID); len(msgs) != 0 {
		t.Errorf("the endpoint of a revoked key was queued %v", messageSummary(msgs))
	}
	if got, err := s.FindWebhookByID(ctx, byOther.ID); err != nil || !got.Enabled {
		t.Errorf("the endpoint of a key outside the tree: %+v, %v; want it enabled", got, err)
	}
	if n := len(outboxOf(t, ctx, s, byOther.ID)); n != 2 {
		t.Errorf("the endpoint of a key outside the tree was queued %d key.revoked messages, want 2 (a and a1)", n)
	}
}

func testOutboxExpiredLease(t *testing.T, s WebhookStore) {
	ctx := t.Context()
	_, failures, _ := outboxWebhooks(t, ctx, s)
	c := newCommand("p", 1)
	mustCreateCommand(t, ctx, s, c)
	mustClaim(t, ctx, s, claimRequest("d1", 1, 0))
	ended, err := s.ExpireLeases(ctx, time.Now().Add(2*time.Minute), nil)
	if err != nil || len(ended) != 1 {
		t.Fatalf("ExpireLeases = %v, %v; want the claimed command", commandIDs(ended), err)
	}
	if diff := cmp.Diff([]string{"command.failed " + c.ID + " INTERRUPTED"}, messageSummary(outboxOf(t, ctx, s, failures.ID))); diff != "" {
		t.Errorf("failures endpoint's messages (-want +got):\n%s", diff)
	}
}
