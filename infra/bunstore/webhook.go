package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

var _ domain.WebhookRepository = (*Store)(nil)

// webhookRow is a row of webhooks.
type webhookRow struct {
	bun.BaseModel `bun:"table:webhooks,alias:w"`

	ID                      string     `bun:"id,pk"`
	URL                     string     `bun:"url"`
	Description             string     `bun:"description"`
	Events                  []string   `bun:"events"` // a JSON array
	Secret                  string     `bun:"secret"`
	PreviousSecret          string     `bun:"previous_secret"`
	PreviousSecretExpiresAt *time.Time `bun:"previous_secret_expires_at"`
	Enabled                 bool       `bun:"enabled"`
	DisabledReason          string     `bun:"disabled_reason"`
	ConsecutiveFailures     int        `bun:"consecutive_failures"`
	CreatedBy               string     `bun:"created_by,nullzero"`
	CreatedAt               time.Time  `bun:"created_at"`
	UpdatedAt               time.Time  `bun:"updated_at"`
	ProjectNames            []string   `bun:"project_names"`     // a JSON array
	ProjectSelectors        []string   `bun:"project_selectors"` // a JSON array of canonical selectors
}

// webhookDeliveryRow is a row of webhook_deliveries.
type webhookDeliveryRow struct {
	bun.BaseModel `bun:"table:webhook_deliveries,alias:d"`

	ID              string     `bun:"id,pk"`
	WebhookID       string     `bun:"webhook_id"`
	MessageID       string     `bun:"message_id"`
	EventType       string     `bun:"event_type"`
	EventAt         time.Time  `bun:"event_at"`
	Body            string     `bun:"body"`
	Status          string     `bun:"status"`
	Attempts        int        `bun:"attempts"`
	NextAttemptAt   *time.Time `bun:"next_attempt_at"`
	LastAttemptAt   *time.Time `bun:"last_attempt_at"`
	ResponseCode    int        `bun:"response_code"`
	Error           string     `bun:"error"`
	LatencyUS       int64      `bun:"latency_us"`
	RequestExcerpt  string     `bun:"request_excerpt"`
	ResponseExcerpt string     `bun:"response_excerpt"`
	CreatedAt       time.Time  `bun:"created_at"`
	// LeaseOwner and LeaseExpiresAt are the queue's: "" and nil for a
	// delivery no worker is sending, which is how a saved row leaves it.
	LeaseOwner     string     `bun:"lease_owner"`
	LeaseExpiresAt *time.Time `bun:"lease_expires_at"`
	TraceParent    string     `bun:"trace_parent"`
	TraceState     string     `bun:"trace_state"`
}

// newWebhookRow converts w to a row, its signing secrets sealed if the
// store has a sealer.
func (s *Store) newWebhookRow(w *domain.Webhook) (*webhookRow, error) {
	secret, err := s.sealWebhookSecret(w.ID, w.Secret)
	if err != nil {
		return nil, err
	}
	previous, err := s.sealWebhookSecret(w.ID, w.PreviousSecret)
	if err != nil {
		return nil, err
	}
	events := w.Events
	if events == nil {
		events = []string{} // the column is NOT NULL
	}
	r := &webhookRow{
		ID: w.ID, URL: w.URL, Description: w.Description, Events: events, Secret: secret,
		PreviousSecret: previous, PreviousSecretExpiresAt: storedTimePtr(w.PreviousSecretExpiresAt),
		Enabled: w.Enabled, DisabledReason: w.DisabledReason, ConsecutiveFailures: w.ConsecutiveFailures,
		CreatedBy: w.CreatedBy, CreatedAt: storedTime(w.CreatedAt), UpdatedAt: storedTime(w.UpdatedAt),
	}
	r.ProjectNames, r.ProjectSelectors = projectScopeColumns(w.Projects)
	return r, nil
}

// webhookOf converts a stored row back, its signing secrets opened. A
// project scope that does not parse is an error, never read as the
// unrestricted scope; so is a sealed secret that does not open.
func (s *Store) webhookOf(r *webhookRow) (*domain.Webhook, error) {
	w, err := webhookWithoutSecrets(r)
	if err != nil {
		return nil, err
	}
	if w.Secret, err = s.openWebhookSecret(r.ID, r.Secret); err != nil {
		return nil, err
	}
	if w.PreviousSecret, err = s.openWebhookSecret(r.ID, r.PreviousSecret); err != nil {
		return nil, err
	}
	return w, nil
}

// webhookWithoutSecrets converts a stored row back but for its signing
// secrets, for what only routes events (and so works without the secrets
// key, as `rdev keys revoke` does).
func webhookWithoutSecrets(r *webhookRow) (*domain.Webhook, error) {
	projects, err := projectScopeOf(r.ProjectNames, r.ProjectSelectors)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", r.ID, err)
	}
	return &domain.Webhook{
		ID: r.ID, URL: r.URL, Description: r.Description, Events: r.Events,
		PreviousSecretExpiresAt: storedTimePtr(r.PreviousSecretExpiresAt),
		Enabled:                 r.Enabled, DisabledReason: r.DisabledReason, ConsecutiveFailures: r.ConsecutiveFailures,
		CreatedBy: r.CreatedBy, CreatedAt: storedTime(r.CreatedAt), UpdatedAt: storedTime(r.UpdatedAt),
		Projects: projects,
	}, nil
}

// webhooksOf converts stored rows back with convert.
func webhooksOf(rows []*webhookRow, convert func(*webhookRow) (*domain.Webhook, error)) ([]*domain.Webhook, error) {
	out := make([]*domain.Webhook, len(rows))
	for i, r := range rows {
		w, err := convert(r)
		if err != nil {
			return nil, err
		}
		out[i] = w
	}
	return out, nil
}

func newWebhookDeliveryRow(d *domain.WebhookDelivery) *webhookDeliveryRow {
	return &webhookDeliveryRow{
		ID: d.ID, WebhookID: d.WebhookID, MessageID: d.MessageID, EventType: d.EventType,
		EventAt: storedTime(d.EventAt), Body: string(d.Body), Status: string(d.Status), Attempts: d.Attempts,
		NextAttemptAt: storedTimePtr(d.NextAttemptAt), LastAttemptAt: storedTimePtr(d.LastAttemptAt),
		ResponseCode: d.ResponseCode, Error: d.Error, LatencyUS: d.Latency.Microseconds(),
		RequestExcerpt: d.RequestExcerpt, ResponseExcerpt: d.ResponseExcerpt, CreatedAt: storedTime(d.CreatedAt),
		TraceParent: d.TraceParent, TraceState: d.TraceState,
	}
}

func (r *webhookDeliveryRow) delivery() *domain.WebhookDelivery {
	return &domain.WebhookDelivery{
		ID: r.ID, WebhookID: r.WebhookID, MessageID: r.MessageID, EventType: r.EventType,
		EventAt: storedTime(r.EventAt), Body: []byte(r.Body), Status: domain.WebhookDeliveryStatus(r.Status),
		Attempts: r.Attempts, NextAttemptAt: storedTimePtr(r.NextAttemptAt), LastAttemptAt: storedTimePtr(r.LastAttemptAt),
		ResponseCode: r.ResponseCode, Error: r.Error, Latency: time.Duration(r.LatencyUS) * time.Microsecond,
		RequestExcerpt: r.RequestExcerpt, ResponseExcerpt: r.ResponseExcerpt, CreatedAt: storedTime(r.CreatedAt),
		TraceParent: r.TraceParent, TraceState: r.TraceState,
	}
}

// CreateWebhook inserts w and appends audit (unless it is nil) in the same
// transaction. It returns ECONFLICT if an endpoint with w's ID exists.
func (s *Store) CreateWebhook(ctx context.Context, w *domain.Webhook, audit *domain.AuditEntry) error {
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		row, err := s.newWebhookRow(w)
		if err != nil {
			return err
		}
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			if isUniqueViolation(err) {
				return domain.Errorf(domain.ECONFLICT, "webhook %q already exists", w.ID)
			}
			return fmt.Errorf("insert webhook %s: %w", w.ID, translate(err))
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

// FindWebhookByID returns the endpoint with the given ID, or ENOTFOUND.
func (s *Store) FindWebhookByID(ctx context.Context, id string) (*domain.Webhook, error) {
	row := new(webhookRow)
	err := s.db.NewSelect().Model(row).Where("?TableAlias.id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webhookNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("find webhook %s: %w", id, translate(err))
	}
	return s.webhookOf(row)
}

// FindWebhooks returns the endpoints whose IDs sort after f.AfterID, in ID
// order, at most f.Limit of them (all when f.Limit is 0).
func (s *Store) FindWebhooks(ctx context.Context, f domain.WebhookFilter) ([]*domain.Webhook, error) {
	var rows []*webhookRow
	q := s.db.NewSelect().Model(&rows).OrderExpr("?TableAlias.id ASC")
	if f.AfterID != "" {
		q = q.Where("?TableAlias.id > ?", f.AfterID)
	}
	if f.Limit > 0 {
		q = q.Limit(int64(f.Limit))
	}
	if err := q.Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find webhooks: %w", translate(err))
	}
	return webhooksOf(rows, s.webhookOf)
}

// UpdateWebhook loads the endpoint, calls update on it and saves the result,
// in one transaction that holds the row's lock (on SQLite, the database's
// write lock), and appends audit unless it is nil. It returns ENOTFOUND, or
// update's error unchanged, having saved nothing.
func (s *Store) UpdateWebhook(ctx context.Context, id string, update func(*domain.Webhook) error, audit *domain.AuditEntry) (*domain.Webhook, error) {
	var saved *domain.Webhook
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		row := new(webhookRow)
		q := tx.NewSelect().Model(row).Where("?TableAlias.id = ?", id)
		if s.isPostgres() {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); errors.Is(err, sql.ErrNoRows) {
			return webhookNotFound(id)
		} else if err != nil {
			return fmt.Errorf("load webhook %s: %w", id, translate(err))
		}
		w, err := s.webhookOf(row)
		if err != nil {
			return err
		}
		loaded := secretsOf(w)
		if err := update(w); err != nil {
			return err
		}
		if w.ID != id {
			return fmt.Errorf("update webhook %s: the update changed its ID to %q", id, w.ID)
		}
		if row, err = s.updatedWebhookRow(row, loaded, w); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(row).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("update webhook %s: %w", id, translate(err))
		}
		if saved, err = s.webhookOf(row); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, audit)
	})
	if err != nil {
		return nil, err
	}
	return saved, nil
}

// DeleteWebhook removes the endpoint with its deliveries and appends audit
// unless it is nil, in one transaction. It returns ENOTFOUND.
func (s *Store) DeleteWebhook(ctx context.Context, id string, audit *domain.AuditEntry) error {
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		// Deliveries go first: SQLite enforces the cascade only with
		// foreign_keys on, and this way neither dialect relies on it.
		if _, err := tx.NewDelete().Model((*webhookDeliveryRow)(nil)).Where("webhook_id = ?", id).Exec(ctx); err != nil {
			return fmt.Errorf("delete deliveries of webhook %s: %w", id, translate(err))
		}
		res, err := tx.NewDelete().Model((*webhookRow)(nil)).Where("id = ?", id).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete webhook %s: %w", id, translate(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete webhook %s: %w", id, translate(err))
		} else if n == 0 {
			return webhookNotFound(id)
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

// FindWebhookDeliveries returns one endpoint's deliveries with IDs before
// f.BeforeID, newest first, at most f.Limit of them (all when 0).
func (s *Store) FindWebhookDeliveries(ctx context.Context, f domain.WebhookDeliveryFilter) ([]*domain.WebhookDelivery, error) {
	var rows []*webhookDeliveryRow
	q := s.db.NewSelect().Model(&rows).
		Where("?TableAlias.webhook_id = ?", f.WebhookID).
		OrderExpr("?TableAlias.id DESC")
	if f.BeforeID != "" {
		q = q.Where("?TableAlias.id < ?", f.BeforeID)
	}
	if f.Limit > 0 {
		q = q.Limit(int64(f.Limit))
	}
	if err := q.Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find deliveries of webhook %s: %w", f.WebhookID, translate(err))
	}
	out := make([]*domain.WebhookDelivery, len(rows))
	for i, r := range rows {
		out[i] = r.delivery()
	}
	return out, nil
}

func webhookNotFound(id string) error {
	return domain.Errorf(domain.ENOTFOUND, "webhook %q not found", id)
}

// FindWebhookDeliveryByID returns the delivery with the given ID, or
// ENOTFOUND.
func (s *Store) FindWebhookDeliveryByID(ctx context.Context, id string) (*domain.WebhookDelivery, error) {
	row := new(webhookDeliveryRow)
	err := s.db.NewSelect().Model(row).Where("?TableAlias.id = ?", id).Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "webhook delivery %q not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("find webhook delivery %s: %w", id, translate(err))
	}
	return row.delivery(), nil
}

// CreateWebhookDeliveries inserts ds and appends audit unless it is nil, in
// one transaction. It returns ENOTFOUND if an endpoint does not exist.
func (s *Store) CreateWebhookDeliveries(ctx context.Context, ds []*domain.WebhookDelivery, audit *domain.AuditEntry) error {
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		for _, d := range ds {
			n, err := tx.NewSelect().Model((*webhookRow)(nil)).Where("id = ?", d.WebhookID).Count(ctx)
			if err != nil {
				return fmt.Errorf("find webhook %s: %w", d.WebhookID, translate(err))
			} else if n == 0 {
				return webhookNotFound(d.WebhookID)
			}
		}
		if err := s.insertDeliveries(ctx, tx, ds); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

// appendWebhookEvents writes, inside tx, a delivery of each event to every
// enabled endpoint that subscribes to it: the outbox half of the change tx
// makes, so that a message is queued exactly when the change commits.
func (s *Store) appendWebhookEvents(ctx context.Context, tx bun.Tx, events ...domain.WebhookEvent) error {
	if len(events) == 0 {
		return nil
	}
	var rows []*webhookRow
	if err := tx.NewSelect().Model(&rows).Where("?TableAlias.enabled = ?", true).Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("find webhooks: %w", translate(err))
	}
	if len(rows) == 0 {
		return nil
	}
	ws, err := webhooksOf(rows, webhookWithoutSecrets)
	if err != nil {
		return err
	}
	var ds []*domain.WebhookDelivery
	for _, e := range events {
		ds = append(ds, domain.WebhookDeliveries(e, ws, domain.ProjectOfEvent(ctx, s.projects, e, ws))...)
	}
	return s.insertDeliveries(ctx, tx, ds)
}

// insertDeliveries inserts ds, each in the trace of ctx when it has one (the
// change that queues them), else in the delivery's own (a command's events
// outside a trace: the request that queued the command).
func (s *Store) insertDeliveries(ctx context.Context, tx bun.Tx, ds []*domain.WebhookDelivery) error {
	if len(ds) == 0 {
		return nil
	}
	tc := s.traceContext(ctx)
	rows := make([]*webhookDeliveryRow, len(ds))
	for i, d := range ds {
		rows[i] = newWebhookDeliveryRow(d)
		if tc.Parent != "" {
			rows[i].TraceParent, rows[i].TraceState = tc.Parent, tc.State
		}
	}
	if _, err := tx.NewInsert().Model(&rows).Exec(ctx); err != nil {
		return fmt.Errorf("insert webhook deliveries: %w", translate(err))
	}
	return nil
}

// appendCommandEvents writes the outbox rows of commands that reached their
// current state in tx.
func (s *Store) appendCommandEvents(ctx context.Context, tx bun.Tx, rows ...*commandRow) error {
	events := make([]domain.WebhookEvent, 0, len(rows))
	for _, r := range rows {
		if r != nil {
			events = append(events, domain.CommandEvent(r.command()))
		}
	}
	return s.appendWebhookEvents(ctx, tx, events...)
}
