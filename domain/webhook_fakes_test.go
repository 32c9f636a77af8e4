package domain

import (
	"context"
	"slices"
	"sync"
)

// webhookRepo is an in-memory WebhookRepository that appends to its audit
// log with each change, as a store does in the change's transaction.
type webhookRepo struct {
	mu         sync.Mutex
	audit      *auditLog
	webhooks   map[string]*Webhook
	deliveries []*WebhookDelivery
}

var _ WebhookRepository = (*webhookRepo)(nil)

func newWebhookRepo() *webhookRepo {
	return &webhookRepo{audit: newAuditLog(), webhooks: map[string]*Webhook{}}
}

func cloneWebhook(w *Webhook) *Webhook {
	c := *w
	c.Events = slices.Clone(w.Events)
	return &c
}

func (r *webhookRepo) CreateWebhook(_ context.Context, w *Webhook, audit *AuditEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.webhooks[w.ID]; ok {
		return Errorf(ECONFLICT, "webhook %s exists", w.ID)
	}
	if err := r.audit.add(audit); err != nil {
		return err
	}
	r.webhooks[w.ID] = cloneWebhook(w)
	return nil
}

func (r *webhookRepo) FindWebhookByID(_ context.Context, id string) (*Webhook, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.webhooks[id]
	if !ok {
		return nil, webhookNotFound(id)
	}
	return cloneWebhook(w), nil
}

func (r *webhookRepo) FindWebhooks(_ context.Context, f WebhookFilter) ([]*Webhook, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*Webhook
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range r.webhooks {
			if !yield(id) {
				return
			}
		}
	}) {
		if id > f.AfterID && (f.Limit == 0 || len(out) < f.Limit) {
			out = append(out, cloneWebhook(r.webhooks[id]))
		}
	}
	return out, nil
}

func (r *webhookRepo) UpdateWebhook(_ context.Context, id string, update func(*Webhook) error, audit *AuditEntry) (*Webhook, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w, ok := r.webhooks[id]
	if !ok {
		return nil, webhookNotFound(id)
	}
	c := cloneWebhook(w)
	if err := update(c); err != nil {
		return nil, err
	}
	if err := r.audit.add(audit); err != nil {
		return nil, err
	}
	r.webhooks[id] = cloneWebhook(c)
	return c, nil
}

func (r *webhookRepo) DeleteWebhook(_ context.Context, id string, audit *AuditEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.webhooks[id]; !ok {
		return webhookNotFound(id)
	}
	if err := r.audit.add(audit); err != nil {
		return err
	}
	delete(r.webhooks, id)
	r.deliveries = slices.DeleteFunc(r.deliveries, func(d *WebhookDelivery) bool { return d.WebhookID == id })
	return nil
}

func (r *webhookRepo) FindWebhookDeliveries(_ context.Context, f WebhookDeliveryFilter) ([]*WebhookDelivery, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*WebhookDelivery
	for _, d := range slices.Backward(r.deliveries) {
		if d.WebhookID == f.WebhookID && (f.BeforeID == "" || d.ID < f.BeforeID) && (f.Limit == 0 || len(out) < f.Limit) {
			c := *d
			out = append(out, &c)
		}
	}
	return out, nil
}

func (r *webhookRepo) FindWebhookDeliveryByID(_ context.Context, id string) (*WebhookDelivery, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range r.deliveries {
		if d.ID == id {
			c := *d
			return &c, nil
		}
	}
	return nil, deliveryNotFound(id)
}

func (r *webhookRepo) CreateWebhookDeliveries(_ context.Context, ds []*WebhookDelivery, audit *AuditEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range ds {
		if _, ok := r.webhooks[d.WebhookID]; !ok {
			return webhookNotFound(d.WebhookID)
		}
	}
	if err := r.audit.add(audit); err != nil {
		return err
	}
	for _, d := range ds {
		c := *d
		r.deliveries = append(r.deliveries, &c)
	}
	return nil
}
