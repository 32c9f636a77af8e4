package domain

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// WebhookClaim is a delivery leased to one worker, with its endpoint as it
// was when the lease was taken.
type WebhookClaim struct {
	Delivery *WebhookDelivery
	Webhook  *Webhook
}

// WebhookClaimRequest asks ClaimWebhookDeliveries for work.
type WebhookClaimRequest struct {
	// Owner names the claiming worker; it holds the leases.
	Owner string
	// Max is how many deliveries to claim at most.
	Max int
	// Now decides what is due; LeaseUntil is when the leases expire.
	Now, LeaseUntil time.Time
}

// WebhookQueue is the delivery queue the worker drains.
type WebhookQueue interface {
	// ClaimWebhookDeliveries leases up to r.Max PENDING deliveries that are
	// due at r.Now, to enabled endpoints, at most one per endpoint and none
	// to an endpoint that has a delivery leased to anyone, each endpoint's
	// oldest event first. Concurrent claims, from any process, never lease
	// one delivery twice or two deliveries of one endpoint at once.
	ClaimWebhookDeliveries(ctx context.Context, r WebhookClaimRequest) ([]WebhookClaim, error)
	// RecordWebhookAttempt loads the delivery leased to owner and its
	// endpoint, lets record change both, saves them and releases the lease,
	// in one transaction. It returns ECONFLICT if owner no longer holds the
	// lease (it expired and another worker took it), ENOTFOUND if the
	// delivery was deleted with its endpoint.
	RecordWebhookAttempt(ctx context.Context, owner, deliveryID string, record func(*WebhookDelivery, *Webhook) error) error
}

// WebhookWorkerConfig configures a WebhookWorker. Zero values take the
// defaults named.
type WebhookWorkerConfig struct {
	// Owner names this worker in leases; it must be unique among the
	// processes sharing the queue (default: a new ID).
	Owner string
	// Concurrency is how many attempts are in flight at most (default 8).
	Concurrency int
	// LeaseTTL bounds how long a claimed delivery is this worker's: longer
	// than an attempt can take (default 1 minute).
	LeaseTTL time.Duration
	// PollInterval is how often the queue is read (default 1 s).
	PollInterval time.Duration
	// DisableAfter disables an endpoint after that many failed attempts in
	// a row (0: DefaultWebhookDisableAfter; negative: never).
	DisableAfter int
	// Policy schedules retries (zero: DefaultWebhookRetryPolicy).
	Policy WebhookRetryPolicy
	Logger *slog.Logger
}

// maxWebhookErrorBytes bounds the error kept of an attempt.
const maxWebhookErrorBytes = 500

// DefaultWebhookDisableAfter is how many failed attempts in a row disable an
// endpoint unless configured: a little over two messages' whole schedules.
const DefaultWebhookDisableAfter = 25

// WebhookWorker sends due deliveries and records how each attempt went. It
// runs apart from command execution: a slow or failing receiver delays only
// its own messages.
type WebhookWorker struct {
	queue  WebhookQueue
	sender WebhookSender
	cfg    WebhookWorkerConfig
	now    func() time.Time
}

// NewWebhookWorker returns a worker that drains queue through sender.
func NewWebhookWorker(queue WebhookQueue, sender WebhookSender, cfg WebhookWorkerConfig) *WebhookWorker {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = time.Minute
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.DisableAfter == 0 {
		cfg.DisableAfter = DefaultWebhookDisableAfter
	}
	if cfg.Policy.Schedule == nil {
		cfg.Policy = DefaultWebhookRetryPolicy
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Owner == "" {
		cfg.Owner = NewID(time.Now())
	}
	return &WebhookWorker{queue: queue, sender: sender, cfg: cfg, now: time.Now}
}

// Run sends deliveries until ctx ends. Errors reading the queue are logged
// and retried at the next poll.
func (w *WebhookWorker) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.PollInterval)
	defer t.Stop()
	for {
		for {
			n, err := w.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				w.cfg.Logger.Warn("webhook deliveries", "err", err)
			}
			// Claims take one delivery per endpoint; go on while there
			// are any, so a burst to one endpoint is not paced by the poll.
			if err != nil || n == 0 {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RunOnce claims up to Concurrency due deliveries, sends them in parallel,
// records each attempt, and returns how many it sent.
func (w *WebhookWorker) RunOnce(ctx context.Context) (int, error) {
	now := w.now()
	claims, err := w.queue.ClaimWebhookDeliveries(ctx, WebhookClaimRequest{
		Owner: w.cfg.Owner, Max: w.cfg.Concurrency, Now: now, LeaseUntil: now.Add(w.cfg.LeaseTTL),
	})
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(claims))
	for i, c := range claims {
		wg.Go(func() { errs[i] = w.attempt(ctx, c) })
	}
	wg.Wait()
	return len(claims), errors.Join(errs...)
}

// attempt sends one claimed delivery and records the outcome, even when ctx
// ends meanwhile: an attempt that was made is written down.
func (w *WebhookWorker) attempt(ctx context.Context, c WebhookClaim) error {
	d := c.Delivery
	resp := w.sender.Send(ctx, WebhookAttempt{
		URL: c.Webhook.URL, MessageID: d.MessageID, Timestamp: w.now(), Body: d.Body, Secrets: c.Webhook.Secrets(w.now()),
		TraceParent: d.TraceParent, TraceState: d.TraceState,
	})
	at := w.now()
	err := w.queue.RecordWebhookAttempt(context.WithoutCancel(ctx), w.cfg.Owner, d.ID, func(d *WebhookDelivery, wh *Webhook) error {
		w.apply(d, wh, resp, at)
		return nil
	})
	switch ErrorCode(err) {
	case "":
		return nil
	case ENOTFOUND, ECONFLICT:
		// Deleted meanwhile, or the lease passed on: nothing to record.
		w.cfg.Logger.Info("webhook attempt not recorded", "delivery", d.ID, "err", err)
		return nil
	}
	return err
}

// apply records resp, received at now, on the delivery and its endpoint:
// 2xx delivers it and clears the endpoint's failure count; 410 fails it and
// disables the endpoint; anything else schedules a retry by the policy, or
// fails it for good when none is left, and counts towards disabling.
func (w *WebhookWorker) apply(d *WebhookDelivery, wh *Webhook, resp WebhookResponse, now time.Time) {
	now = now.UTC().Truncate(time.Microsecond)
	d.Attempts++
	d.LastAttemptAt, d.ResponseCode, d.Latency = &now, resp.StatusCode, resp.Latency
	d.RequestExcerpt, d.ResponseExcerpt, d.Error = resp.RequestExcerpt, resp.ResponseExcerpt, ""
	if resp.Err != nil {
		d.Error = resp.Err.Error()
		if len(d.Error) > maxWebhookErrorBytes {
			d.Error = strings.ToValidUTF8(d.Error[:maxWebhookErrorBytes], "")
		}
	}
	switch resp.Outcome() {
	case WebhookDelivered:
		d.Status, d.NextAttemptAt = WebhookSucceeded, nil
		wh.ConsecutiveFailures = 0
		return
	case WebhookGone:
		d.Status, d.NextAttemptAt = WebhookFailed, nil
		wh.ConsecutiveFailures++
		if wh.Enabled {
			wh.Enabled, wh.DisabledReason, wh.UpdatedAt = false, WebhookDisabledGone, now
		}
		return
	case WebhookRetry:
	}
	wh.ConsecutiveFailures++
	if next, ok := w.cfg.Policy.Next(d.Attempts, now, resp); ok {
		next = next.UTC().Truncate(time.Microsecond)
		d.NextAttemptAt = &next
	} else {
		d.Status, d.NextAttemptAt = WebhookFailed, nil
	}
	if w.cfg.DisableAfter > 0 && wh.ConsecutiveFailures >= w.cfg.DisableAfter && wh.Enabled {
		wh.Enabled, wh.DisabledReason, wh.UpdatedAt = false, WebhookDisabledFailing, now
	}
}
