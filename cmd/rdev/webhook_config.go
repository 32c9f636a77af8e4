package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/webhook"
)

// webhookConfig is how `rdev serve` delivers webhooks.
type webhookConfig struct {
	AllowHTTP    bool
	AllowCIDRs   []string
	Timeout      time.Duration
	DisableAfter int
	Concurrency  int
	PollInterval time.Duration
}

func (c *webhookConfig) register(f *envFlags) {
	f.Bool(&c.AllowHTTP, "webhook-allow-http", "RDEV_WEBHOOK_ALLOW_HTTP", false, "accept and deliver to plain http webhook URLs, for local development (default: https only)")
	f.List(&c.AllowCIDRs, "webhook-allow-cidrs", "RDEV_WEBHOOK_ALLOW_CIDRS", "internal networks webhook receivers may be in (loopback, private, link-local and other internal addresses are refused otherwise)")
	f.Duration(&c.Timeout, "webhook-timeout", "RDEV_WEBHOOK_TIMEOUT", webhook.DefaultTimeout, "bound on one delivery attempt: connecting, sending and the response")
	f.Int(&c.DisableAfter, "webhook-disable-after", "RDEV_WEBHOOK_DISABLE_AFTER", domain.DefaultWebhookDisableAfter, "failed attempts in a row after which an endpoint is disabled (0: never)")
	f.Int(&c.Concurrency, "webhook-concurrency", "RDEV_WEBHOOK_CONCURRENCY", 8, "delivery attempts in flight at once in this process")
	f.Duration(&c.PollInterval, "webhook-poll-interval", "RDEV_WEBHOOK_POLL_INTERVAL", time.Second, "how often the delivery queue is read for due messages")
}

// worker returns the delivery worker over queue, sending through a sender
// that refuses internal addresses except the allowed networks.
// worker builds the delivery worker; observe wraps its sender (for metrics).
func (c *webhookConfig) worker(queue domain.WebhookQueue, log *slog.Logger, observe func(domain.WebhookSender) domain.WebhookSender) (*domain.WebhookWorker, *webhook.Sender, error) {
	allow, err := domain.ParseCIDRs(c.AllowCIDRs)
	if err != nil {
		return nil, nil, fmt.Errorf("RDEV_WEBHOOK_ALLOW_CIDRS: %s", domain.ErrorMessage(err))
	}
	if c.Timeout <= 0 {
		return nil, nil, fmt.Errorf("RDEV_WEBHOOK_TIMEOUT: must be positive, got %s", c.Timeout)
	}
	if c.DisableAfter < 0 {
		return nil, nil, fmt.Errorf("RDEV_WEBHOOK_DISABLE_AFTER: must be 0 or more, got %d", c.DisableAfter)
	}
	if c.Concurrency < 1 || c.PollInterval <= 0 {
		return nil, nil, fmt.Errorf("RDEV_WEBHOOK_CONCURRENCY and RDEV_WEBHOOK_POLL_INTERVAL: must be positive")
	}
	disableAfter := c.DisableAfter
	if disableAfter == 0 {
		disableAfter = -1 // the worker's "never"
	}
	sender := webhook.NewSender(webhook.Options{Timeout: c.Timeout, AllowHTTP: c.AllowHTTP, Allow: allow, UserAgent: "rdev-webhooks/" + version})
	w := domain.NewWebhookWorker(queue, observe(sender), domain.WebhookWorkerConfig{
		Concurrency: c.Concurrency, LeaseTTL: c.Timeout + 10*time.Second, PollInterval: c.PollInterval,
		DisableAfter: disableAfter, Logger: log,
	})
	return w, sender, nil
}
