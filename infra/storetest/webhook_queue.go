package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// WebhookQueueStore is a store with the delivery queue.
type WebhookQueueStore interface {
	WebhookStore
	domain.WebhookQueue
}

// TestWebhookQueue runs the domain.WebhookQueue contract. newStore is called
// once per subtest.
func TestWebhookQueue(t *testing.T, newStore func(t *testing.T) WebhookQueueStore) {
	t.Run("Claim", func(t *testing.T) {
		t.Parallel()
		testClaimWebhookDeliveries(t, newStore(t))
	})
	t.Run("Record", func(t *testing.T) {
		t.Parallel()
		testRecordWebhookAttempt(t, newStore(t))
	})
	t.Run("Order", func(t *testing.T) {
		t.Parallel()
		testWebhookOrder(t, newStore(t))
	})
}

// testWebhookOrder: an endpoint gets its messages in event order. A later
// message waits while an earlier one is pending a retry, and goes once that
// one has failed for good.
func testWebhookOrder(t *testing.T, s WebhookQueueStore) {
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	w := newWebhook()
	mustCreateWebhook(t, ctx, s, w)
	first, second := newDelivery(w.ID, base), newDelivery(w.ID, base.Add(time.Millisecond))
	if err := s.CreateWebhookDeliveries(ctx, []*domain.WebhookDelivery{first, second}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if diff := cmp.Diff([]string{first.ID}, claimedIDs(mustClaimDeliveries(t, ctx, s, webhookClaim("w1", 10, now)))); diff != "" {
		t.Fatalf("first claim (-want +got):\n%s", diff)
	}
	retry := func(status domain.WebhookDeliveryStatus, next *time.Time) {
		t.Helper()
		if err := s.RecordWebhookAttempt(ctx, "w1", first.ID, func(d *domain.WebhookDelivery, _ *domain.Webhook) error {
			d.Status, d.NextAttemptAt, d.Attempts = status, next, d.Attempts+1
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	retry(domain.WebhookPending, ptr(at(now.Add(time.Minute))))
	if got := mustClaimDeliveries(t, ctx, s, webhookClaim("w1", 10, now)); len(got) != 0 {
		t.Fatalf("claimed %v while the endpoint's earlier message waits for its retry", claimedIDs(got))
	}
	if diff := cmp.Diff([]string{first.ID}, claimedIDs(mustClaimDeliveries(t, ctx, s, webhookClaim("w1", 10, now.Add(2*time.Minute))))); diff != "" {
		t.Fatalf("claim once the retry is due (-want +got):\n%s", diff)
	}
	retry(domain.WebhookFailed, nil)
	if diff := cmp.Diff([]string{second.ID}, claimedIDs(mustClaimDeliveries(t, ctx, s, webhookClaim("w1", 10, now.Add(2*time.Minute))))); diff != "" {
		t.Fatalf("claim after the earlier message failed for good (-want +got):\n%s", diff)
	}
}

func webhookClaim(owner string, most int, now time.Time) domain.WebhookClaimRequest {
	return domain.WebhookClaimRequest{Owner: owner, Max: most, Now: now, LeaseUntil: now.Add(time.Minute)}
}

func claimedIDs(cs []domain.WebhookClaim) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Delivery.ID)
	}
	return out
}

func mustClaimDeliveries(tb testing.TB, ctx context.Context, s WebhookQueueStore, r domain.WebhookClaimRequest) []domain.WebhookClaim {
	tb.Helper()
	cs, err := s.ClaimWebhookDeliveries(ctx, r)
	if err != nil {
		tb.Fatalf("ClaimWebhookDeliveries(%+v): %v", r, err)
	}
	return cs
}

func testClaimWebhookDeliveries(t *testing.T, s WebhookQueueStore) {
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	a, b, off := newWebhook(), newWebhook(), newWebhook()
	a.ID, b.ID, off.ID = idAt(base), idAt(base.Add(time.Millisecond)), idAt(base.Add(2*time.Millisecond))
	off.Enabled = false
	for _, w := range []*domain.Webhook{a, b, off} {
		mustCreateWebhook(t, ctx, s, w)
	}
	// Deliveries are made in this order, but a's second event is older than
	// its first, and b's second is not yet due.
	a1, a2 := newDelivery(a.ID, base.Add(10*time.Millisecond)), newDelivery(a.ID, base.Add(11*time.Millisecond))
	a2.EventAt = at(base.Add(time.Millisecond))
	b1, b2 := newDelivery(b.ID, base.Add(12*time.Millisecond)), newDelivery(b.ID, base.Add(13*time.Millisecond))
	b2.NextAttemptAt = ptr(at(base.Add(2 * time.Hour)))
	offDelivery := newDelivery(off.ID, base.Add(14*time.Millisecond))
	if err := s.CreateWebhookDeliveries(ctx, []*domain.WebhookDelivery{a1, a2, b1, b2, offDelivery}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()

	if _, err := s.ClaimWebhookDeliveries(ctx, webhookClaim("", 1, now)); domain.ErrorCode(err) != domain.EINVALID {
		t.Errorf("claim without an owner = %v, want EINVALID", err)
	}
	// One per endpoint, oldest event first; the disabled endpoint's is left.
	first := mustClaimDeliveries(t, ctx, s, webhookClaim("w1", 10, now))
	if diff := cmp.Diff([]string{a2.ID, b1.ID}, claimedIDs(first)); diff != "" {
		t.Fatalf("first claim (-want +got):\n%s", diff)
	}
	if first[0].Webhook == nil || first[0].Webhook.ID != a.ID || first[0].Webhook.Secret != a.Secret {
		t.Errorf("claim's webhook = %+v, want endpoint a with its secret", first[0].Webhook)
	}
	// While a and b have live leases, nothing else of theirs is claimed.
	if got := mustClaimDeliveries(t, ctx, s, webhookClaim("w2", 10, now)); len(got) != 0 {
		t.Fatalf("second claim took %v while the endpoints are leased", claimedIDs(got))
	}
	// Recording an attempt releases the lease: a's next delivery is free.
	if err := s.RecordWebhookAttempt(ctx, "w1", a2.ID, func(d *domain.WebhookDelivery, _ *domain.Webhook) error {
		d.Status, d.NextAttemptAt, d.Attempts = domain.WebhookSucceeded, nil, 1
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{a1.ID}, claimedIDs(mustClaimDeliveries(t, ctx, s, webhookClaim("w2", 10, now)))); diff != "" {
		t.Fatalf("claim after the record (-want +got):\n%s", diff)
	}
	// An expired lease may be taken over; b2 becomes due later.
	later := now.Add(3 * time.Hour)
	if diff := cmp.Diff([]string{a1.ID, b1.ID}, claimedIDs(mustClaimDeliveries(t, ctx, s, webhookClaim("w3", 10, later)))); diff != "" {
		t.Errorf("claim after the leases expired (-want +got):\n%s", diff)
	}
	if err := s.RecordWebhookAttempt(ctx, "w1", b1.ID, func(*domain.WebhookDelivery, *domain.Webhook) error { return nil }); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("record by the worker that lost the lease = %v, want ECONFLICT", err)
	}
	if err := s.RecordWebhookAttempt(ctx, "w3", idAt(now), func(*domain.WebhookDelivery, *domain.Webhook) error { return nil }); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("record of an unknown delivery = %v, want ENOTFOUND", err)
	}
}

func testRecordWebhookAttempt(t *testing.T, s WebhookQueueStore) {
	ctx := t.Context()
	w := newWebhook()
	mustCreateWebhook(t, ctx, s, w)
	d := newDelivery(w.ID, time.Now().Add(-time.Minute))
	if err := s.CreateWebhookDeliveries(ctx, []*domain.WebhookDelivery{d}, nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if got := mustClaimDeliveries(t, ctx, s, webhookClaim("w1", 1, now)); len(got) != 1 {
		t.Fatalf("claimed %v, want the delivery", claimedIDs(got))
	}
	next := at(now.Add(5 * time.Second))
	want := *d
	want.Attempts, want.NextAttemptAt, want.LastAttemptAt = 1, &next, ptr(at(now))
	want.ResponseCode, want.Error, want.Latency = 503, "", 1500*time.Microsecond
	want.RequestExcerpt, want.ResponseExcerpt = `{"type":"command.finished"`, "try later"
	err := s.RecordWebhookAttempt(ctx, "w1", d.ID, func(got *domain.WebhookDelivery, hook *domain.Webhook) error {
		if hook.ID != w.ID {
			t.Errorf("record got webhook %s, want %s", hook.ID, w.ID)
		}
		*got = want
		hook.ConsecutiveFailures, hook.Enabled, hook.DisabledReason = 3, false, domain.WebhookDisabledFailing
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.FindWebhookDeliveryByID(ctx, d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&want, got, cmpOpts...); diff != "" {
		t.Errorf("recorded delivery (-want +got):\n%s", diff)
	}
	hook, err := s.FindWebhookByID(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if hook.ConsecutiveFailures != 3 || hook.Enabled || hook.DisabledReason != domain.WebhookDisabledFailing {
		t.Errorf("recorded webhook = %+v", hook)
	}
	// A second record by the same owner finds no lease.
	if err := s.RecordWebhookAttempt(ctx, "w1", d.ID, func(*domain.WebhookDelivery, *domain.Webhook) error { return nil }); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("record after the lease was released = %v, want ECONFLICT", err)
	}
}

// TestWebhookQueueShared drains one queue with workers on several stores
// of one database, as several rdev processes would, and checks that no
// delivery is sent twice and no endpoint is sent two at once. stores must
// share a database whose queue is empty.
func TestWebhookQueueShared(t *testing.T, stores []WebhookQueueStore, endpoints, perEndpoint int) {
	ctx := t.Context()
	base := time.Now().Add(-time.Hour)
	var ds []*domain.WebhookDelivery
	for e := range endpoints {
		w := newWebhook()
		w.ID = idAt(base.Add(time.Duration(e) * time.Millisecond))
		mustCreateWebhook(t, ctx, stores[0], w)
		for i := range perEndpoint {
			ds = append(ds, newDelivery(w.ID, base.Add(time.Second+time.Duration(e*perEndpoint+i)*time.Millisecond)))
		}
	}
	if err := stores[0].CreateWebhookDeliveries(ctx, ds, nil); err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		inFlight = map[string]string{} // endpoint → delivery being sent
		sent     = map[string]int{}
		total    atomic.Int64
		fails    []string
	)
	var wg sync.WaitGroup
	for i, s := range stores {
		for j := range 2 {
			owner := fmt.Sprintf("store%d-worker%d", i, j)
			wg.Go(func() {
				for total.Load() < int64(len(ds)) && ctx.Err() == nil {
					cs, err := s.ClaimWebhookDeliveries(ctx, webhookClaim(owner, 3, time.Now()))
					if err != nil {
						mu.Lock()
						fails = append(fails, owner+": claim: "+err.Error())
						mu.Unlock()
						return
					}
					for _, c := range cs {
						mu.Lock()
						if other, busy := inFlight[c.Webhook.ID]; busy {
							fails = append(fails, fmt.Sprintf("%s claimed %s while %s of the same endpoint was in flight", owner, c.Delivery.ID, other))
						}
						inFlight[c.Webhook.ID] = c.Delivery.ID
						sent[c.Delivery.ID]++
						mu.Unlock()
					}
					time.Sleep(time.Millisecond) // the attempt
					for _, c := range cs {
						mu.Lock()
						delete(inFlight, c.Webhook.ID)
						mu.Unlock()
						err := s.RecordWebhookAttempt(ctx, owner, c.Delivery.ID, func(d *domain.WebhookDelivery, _ *domain.Webhook) error {
							d.Status, d.NextAttemptAt, d.Attempts = domain.WebhookSucceeded, nil, d.Attempts+1
							return nil
						})
						if err != nil {
							mu.Lock()
							fails = append(fails, owner+": record: "+err.Error())
							mu.Unlock()
						}
						total.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	for _, f := range fails {
		t.Error(f)
	}
	for _, d := range ds {
		if n := sent[d.ID]; n != 1 {
			t.Errorf("delivery %s was claimed %d times, want 1", d.ID, n)
		}
	}
}
