package domain

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// WebhookService manages webhook endpoints and lists their deliveries. Every
// change is recorded in the audit log in the transaction that makes it, and
// every refused attempt by an authenticated caller on its own.
type WebhookService struct {
	repo      WebhookRepository
	audit     *AuditService
	allowHTTP bool
	now       func() time.Time
}

// NewWebhookService returns a service over repo that records every change in
// audit's log (nil records nothing). allowHTTP lets endpoints use plain http,
// for local development; otherwise only https is accepted.
func NewWebhookService(repo WebhookRepository, audit *AuditService, allowHTTP bool) *WebhookService {
	return &WebhookService{repo: repo, audit: audit, allowHTTP: allowHTTP, now: time.Now}
}

// CreateWebhook is the input of WebhookService.Create.
type CreateWebhook struct {
	URL         string
	Events      []string
	Description string
}

// UpdateWebhook is the input of WebhookService.Update: nil fields stay as
// they are.
type UpdateWebhook struct {
	URL         *string
	Events      []string // nil keeps them
	Description *string
	// Enabled true re-enables an endpoint (and clears its failure count);
	// false disables it.
	Enabled *bool
}

// Create adds an endpoint and returns it with its signing secret, which is
// shown only here. It needs webhooks:write; bad input returns EINVALID.
func (s *WebhookService) Create(ctx context.Context, in CreateWebhook) (*Webhook, string, error) {
	entry := s.audit.entry(ctx, AuditWebhookCreate, "")
	w, err := s.create(ctx, in, entry)
	if err != nil {
		return nil, "", s.audit.refused(ctx, entry, err)
	}
	return w, w.Secret, nil
}

func (s *WebhookService) create(ctx context.Context, in CreateWebhook, entry *AuditEntry) (*Webhook, error) {
	caller, err := Authorize(ctx, ScopeWebhooksWrite)
	if err != nil {
		return nil, err
	}
	u, err := ParseWebhookURL(in.URL, s.allowHTTP)
	if err != nil {
		return nil, err
	}
	events, err := ParseWebhookEvents(in.Events)
	if err != nil {
		return nil, err
	}
	if err := validateWebhookDescription(in.Description); err != nil {
		return nil, err
	}
	if err := validateScopedEvents(caller.Projects(), events); err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	w := &Webhook{
		ID: NewID(now), URL: u.String(), Description: in.Description, Events: events,
		Secret: NewWebhookSecret(), Enabled: true, CreatedBy: caller.KeyID(), CreatedAt: now, UpdatedAt: now,
		Projects: caller.Projects(),
	}
	if entry != nil {
		entry.Target, entry.Details = w.ID, webhookDetails(w)
	}
	if err := s.repo.CreateWebhook(ctx, w, entry); err != nil {
		return nil, err
	}
	return w, nil
}

// Get returns an endpoint. It needs webhooks:read; ENOTFOUND if there is
// none or its project scope is wider than the caller's.
func (s *WebhookService) Get(ctx context.Context, id string) (*Webhook, error) {
	caller, err := Authorize(ctx, ScopeWebhooksRead)
	if err != nil {
		return nil, err
	}
	return s.findWebhook(ctx, caller, id)
}

// List returns a page of the endpoints the caller may see (those whose
// project scope lies within its own), oldest first. It needs webhooks:read.
func (s *WebhookService) List(ctx context.Context, req PageRequest) (Page[*Webhook], error) {
	caller, err := Authorize(ctx, ScopeWebhooksRead)
	if err != nil {
		return Page[*Webhook]{}, err
	}
	var keep func(*Webhook) (bool, error)
	if !caller.Projects().Unrestricted() {
		keep = func(w *Webhook) (bool, error) { return webhookVisible(caller, w), nil }
	}
	return scopedPage(req, func(after string, limit int) ([]*Webhook, error) {
		return s.repo.FindWebhooks(ctx, WebhookFilter{AfterID: after, Limit: limit})
	}, func(w *Webhook) string { return w.ID }, keep)
}

// Deliveries returns a page of an endpoint's deliveries, newest first. It
// needs webhooks:read; ENOTFOUND for an endpoint the caller may not see.
func (s *WebhookService) Deliveries(ctx context.Context, webhookID string, req PageRequest) (Page[*WebhookDelivery], error) {
	caller, err := Authorize(ctx, ScopeWebhooksRead)
	if err != nil {
		return Page[*WebhookDelivery]{}, err
	}
	if req.After != "" && !validID(req.After) {
		return Page[*WebhookDelivery]{}, Errorf(EINVALID, "after: malformed cursor")
	}
	if _, err := s.findWebhook(ctx, caller, webhookID); err != nil {
		return Page[*WebhookDelivery]{}, err
	}
	ds, err := s.repo.FindWebhookDeliveries(ctx, WebhookDeliveryFilter{WebhookID: webhookID, BeforeID: req.After, Limit: req.First + 1})
	if err != nil {
		return Page[*WebhookDelivery]{}, err
	}
	return pageOf(ds, req), nil
}

// Update changes an endpoint. It needs webhooks:write; bad input returns
// EINVALID, an unknown endpoint ENOTFOUND.
func (s *WebhookService) Update(ctx context.Context, id string, in UpdateWebhook) (*Webhook, error) {
	entry := s.audit.entry(ctx, AuditWebhookUpdate, Clip(id))
	w, err := s.update(ctx, id, in, entry)
	if err != nil {
		return nil, s.audit.refused(ctx, entry, err)
	}
	return w, nil
}

func (s *WebhookService) update(ctx context.Context, id string, in UpdateWebhook, entry *AuditEntry) (*Webhook, error) {
	caller, err := Authorize(ctx, ScopeWebhooksWrite)
	if err != nil {
		return nil, err
	}
	var u *url.URL
	if in.URL != nil {
		var err error
		if u, err = ParseWebhookURL(*in.URL, s.allowHTTP); err != nil {
			return nil, err
		}
	}
	var events []string
	if in.Events != nil {
		var err error
		if events, err = ParseWebhookEvents(in.Events); err != nil {
			return nil, err
		}
	}
	if in.Description != nil {
		if err := validateWebhookDescription(*in.Description); err != nil {
			return nil, err
		}
	}
	if !validID(id) {
		return nil, webhookNotFound(id)
	}
	return s.repo.UpdateWebhook(ctx, id, func(w *Webhook) error {
		if !webhookVisible(caller, w) {
			return webhookNotFound(id)
		}
		if err := validateScopedEvents(w.Projects, events); err != nil {
			return err
		}
		if u != nil {
			w.URL = u.String()
		}
		if events != nil {
			w.Events = events
		}
		if in.Description != nil {
			w.Description = *in.Description
		}
		switch {
		case in.Enabled == nil:
		case *in.Enabled:
			w.Enabled, w.DisabledReason, w.ConsecutiveFailures = true, "", 0
		case w.Enabled:
			w.Enabled, w.DisabledReason = false, WebhookDisabledByUser
		}
		w.UpdatedAt = s.now().UTC().Truncate(time.Microsecond)
		if entry != nil {
			entry.Details = webhookDetails(w)
		}
		return nil
	}, entry)
}

// Delete removes an endpoint and its deliveries. It needs webhooks:write;
// ENOTFOUND if there is none.
func (s *WebhookService) Delete(ctx context.Context, id string) error {
	entry := s.audit.entry(ctx, AuditWebhookDelete, Clip(id))
	err := func() error {
		caller, err := Authorize(ctx, ScopeWebhooksWrite)
		if err != nil {
			return err
		}
		// An endpoint's scope never changes, so it cannot change between
		// this look and the delete.
		if _, err := s.findWebhook(ctx, caller, id); err != nil {
			return err
		}
		return s.repo.DeleteWebhook(ctx, id, entry)
	}()
	if err != nil {
		return s.audit.refused(ctx, entry, err)
	}
	return nil
}

// RotateSecret gives an endpoint a new signing secret and returns it; it is
// shown only here. For grace (0 to MaxWebhookSecretGrace) messages are
// signed with both the old and the new secret, so receivers can switch
// without rejecting any. It needs webhooks:write.
func (s *WebhookService) RotateSecret(ctx context.Context, id string, grace time.Duration) (*Webhook, string, error) {
	entry := s.audit.entry(ctx, AuditWebhookRotateSecret, Clip(id))
	if entry != nil {
		entry.Details = map[string]string{"gracePeriodSeconds": strconv.FormatInt(int64(grace/time.Second), 10)}
	}
	w, err := s.rotateSecret(ctx, id, grace, entry)
	if err != nil {
		return nil, "", s.audit.refused(ctx, entry, err)
	}
	return w, w.Secret, nil
}

func (s *WebhookService) rotateSecret(ctx context.Context, id string, grace time.Duration, entry *AuditEntry) (*Webhook, error) {
	caller, err := Authorize(ctx, ScopeWebhooksWrite)
	if err != nil {
		return nil, err
	}
	if err := validateWebhookSecretGrace(grace); err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, webhookNotFound(id)
	}
	return s.repo.UpdateWebhook(ctx, id, func(w *Webhook) error {
		if !webhookVisible(caller, w) {
			return webhookNotFound(id)
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		w.PreviousSecret, w.PreviousSecretExpiresAt = "", nil
		if grace > 0 {
			w.PreviousSecret, w.PreviousSecretExpiresAt = w.Secret, new(now.Add(grace))
		}
		w.Secret, w.UpdatedAt = NewWebhookSecret(), now
		return nil
	}, entry)
}

// Test queues a webhook.ping message to an enabled endpoint and returns its
// delivery. It needs webhooks:write; ENOTFOUND for an unknown endpoint,
// ECONFLICT for a disabled one.
func (s *WebhookService) Test(ctx context.Context, id string) (*WebhookDelivery, error) {
	entry := s.audit.entry(ctx, AuditWebhookTest, Clip(id))
	d, err := s.test(ctx, id, entry)
	if err != nil {
		return nil, s.audit.refused(ctx, entry, err)
	}
	return d, nil
}

func (s *WebhookService) test(ctx context.Context, id string, entry *AuditEntry) (*WebhookDelivery, error) {
	w, err := s.enabledWebhook(ctx, id)
	if err != nil {
		return nil, err
	}
	now := s.now()
	e := WebhookEvent{Type: EventPing, At: now, Data: PingEventData{WebhookID: w.ID}}
	d := newWebhookDelivery(w.ID, "", e.Type, now, e.Body(), now)
	if entry != nil {
		entry.Details = map[string]string{"delivery": d.ID}
	}
	if err := s.repo.CreateWebhookDeliveries(ctx, []*WebhookDelivery{d}, entry); err != nil {
		return nil, err
	}
	return d, nil
}

// Redeliver queues a delivery's message again, with the same webhook-id and
// body, as a new delivery, and returns it. It needs webhooks:write; ENOTFOUND
// for an unknown delivery, ECONFLICT if its endpoint is disabled.
func (s *WebhookService) Redeliver(ctx context.Context, deliveryID string) (*WebhookDelivery, error) {
	entry := s.audit.entry(ctx, AuditWebhookRedeliver, Clip(deliveryID))
	d, err := s.redeliver(ctx, deliveryID, entry)
	if err != nil {
		return nil, s.audit.refused(ctx, entry, err)
	}
	return d, nil
}

func (s *WebhookService) redeliver(ctx context.Context, deliveryID string, entry *AuditEntry) (*WebhookDelivery, error) {
	if _, err := Authorize(ctx, ScopeWebhooksWrite); err != nil {
		return nil, err
	}
	if !validID(deliveryID) {
		return nil, deliveryNotFound(deliveryID)
	}
	old, err := s.repo.FindWebhookDeliveryByID(ctx, deliveryID)
	if err != nil {
		return nil, err
	}
	if _, err := s.enabledWebhook(ctx, old.WebhookID); err != nil {
		return nil, err
	}
	d := newWebhookDelivery(old.WebhookID, old.MessageID, old.EventType, old.EventAt, old.Body, s.now())
	if entry != nil {
		entry.Details = map[string]string{"webhook": old.WebhookID, "delivery": d.ID, "messageId": d.MessageID}
	}
	if err := s.repo.CreateWebhookDeliveries(ctx, []*WebhookDelivery{d}, entry); err != nil {
		return nil, err
	}
	return d, nil
}

// enabledWebhook returns an endpoint the caller may send to: ENOTFOUND if
// there is none, ECONFLICT if it is disabled.
func (s *WebhookService) enabledWebhook(ctx context.Context, id string) (*Webhook, error) {
	caller, err := Authorize(ctx, ScopeWebhooksWrite)
	if err != nil {
		return nil, err
	}
	w, err := s.findWebhook(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	if !w.Enabled {
		return nil, Errorf(ECONFLICT, "webhook %s is disabled (%s); enable it with updateWebhook first", w.ID, w.DisabledReason)
	}
	return w, nil
}

// webhookDetails describes an endpoint for the audit log: never its secret,
// and its URL without the query, which may carry a receiver's token.
func webhookDetails(w *Webhook) map[string]string {
	u := w.URL
	if i := strings.IndexByte(u, '?'); i >= 0 {
		u = u[:i] + "?" + Redacted
	}
	return map[string]string{
		"url": u, "events": strings.Join(w.Events, ","), "enabled": strconv.FormatBool(w.Enabled),
	}
}

func deliveryNotFound(id string) error {
	return Errorf(ENOTFOUND, "webhook delivery %q not found", Clip(id))
}

func webhookNotFound(id string) error {
	return Errorf(ENOTFOUND, "webhook %q not found", Clip(id))
}
