package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

var _ domain.WebhookQueue = (*Store)(nil)

// webhookClaimLockSQL serializes delivery claims across every process
// sharing the database, as claimLockSQL does for commands, so that the
// check for an endpoint's live lease cannot race another claim: two workers
// never send to one endpoint at once. The low 32 bits are the OID of the
// webhook_deliveries table.
const webhookClaimLockSQL = `SELECT pg_advisory_xact_lock((x'72646576'::bigint << 32) | 'webhook_deliveries'::regclass::oid::bigint)`

// webhookClaimScan is how many candidates a claim reads per delivery it
// wants: several may belong to one endpoint, of which it takes one.
const webhookClaimScan = 8

// ClaimWebhookDeliveries leases up to r.Max due deliveries, at most one per
// endpoint and none to an endpoint that already has a live lease, oldest
// event first, and for each endpoint only its oldest pending one: messages
// reach an endpoint in event order. On Postgres claims hold an advisory lock and pick rows FOR
// UPDATE SKIP LOCKED; on SQLite the transaction holds the write lock.
func (s *Store) ClaimWebhookDeliveries(ctx context.Context, r domain.WebhookClaimRequest) ([]domain.WebhookClaim, error) {
	if r.Owner == "" {
		return nil, domain.Errorf(domain.EINVALID, "claim: the owner is empty")
	}
	if r.Max <= 0 {
		return nil, nil
	}
	now, until := storedTime(r.Now), storedTime(r.LeaseUntil)
	var claims []domain.WebhookClaim
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if s.isPostgres() {
			if _, err := tx.ExecContext(ctx, webhookClaimLockSQL); err != nil {
				return fmt.Errorf("claim deliveries: lock: %w", translate(err))
			}
		}
		var cands []*webhookDeliveryRow
		q := tx.NewSelect().Model(&cands).
			Where("?TableAlias.status = ?", string(domain.WebhookPending)).
			Where("?TableAlias.next_attempt_at <= ?", now).
			Where("(?TableAlias.lease_expires_at IS NULL OR ?TableAlias.lease_expires_at <= ?)", now).
			Where("EXISTS (SELECT 1 FROM webhooks AS w WHERE w.id = ?TableAlias.webhook_id AND w.enabled = ?)", true).
			Where("NOT EXISTS (SELECT 1 FROM webhook_deliveries AS o WHERE o.webhook_id = ?TableAlias.webhook_id AND o.lease_expires_at > ?)", now).
			// An endpoint gets its messages in event order: a delivery waits
			// while an earlier one of its endpoint is still pending (waiting
			// for its retry), until that one is delivered or fails for good.
			Where("NOT EXISTS (SELECT 1 FROM webhook_deliveries AS e WHERE e.webhook_id = ?TableAlias.webhook_id AND e.status = ? AND (e.event_at < ?TableAlias.event_at OR (e.event_at = ?TableAlias.event_at AND e.id < ?TableAlias.id)))",
				string(domain.WebhookPending)).
			OrderExpr("?TableAlias.event_at, ?TableAlias.id").
			Limit(int64(r.Max * webhookClaimScan))
		if s.isPostgres() {
			q = q.For("UPDATE SKIP LOCKED")
		}
		if err := q.Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("claim deliveries: %w", translate(err))
		}
		seen := map[string]bool{}
		var ids, webhookIDs []string
		var picked []*webhookDeliveryRow
		for _, c := range cands {
			if seen[c.WebhookID] || len(picked) == r.Max {
				continue
			}
			seen[c.WebhookID] = true
			ids, webhookIDs, picked = append(ids, c.ID), append(webhookIDs, c.WebhookID), append(picked, c)
		}
		if len(picked) == 0 {
			return nil
		}
		_, err := tx.NewUpdate().Model((*webhookDeliveryRow)(nil)).
			Set("lease_owner = ?", r.Owner).
			Set("lease_expires_at = ?", until).
			Where("id IN (?)", bun.List(ids)).
			Exec(ctx)
		if err != nil {
			return fmt.Errorf("claim deliveries: update: %w", translate(err))
		}
		var hooks []*webhookRow
		if err := tx.NewSelect().Model(&hooks).Where("?TableAlias.id IN (?)", bun.List(webhookIDs)).Scan(ctx); err != nil {
			return fmt.Errorf("claim deliveries: webhooks: %w", translate(err))
		}
		byID := make(map[string]*domain.Webhook, len(hooks))
		for _, h := range hooks {
			w, err := s.webhookOf(h)
			if err != nil {
				return err
			}
			byID[h.ID] = w
		}
		for _, p := range picked {
			claims = append(claims, domain.WebhookClaim{Delivery: p.delivery(), Webhook: byID[p.WebhookID]})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claims, nil
}

// RecordWebhookAttempt loads the delivery leased to owner and its endpoint,
// both locked, lets record change them, and saves them with the lease
// released, in one transaction. It returns ENOTFOUND if the delivery is
// gone, ECONFLICT if owner does not hold its lease, and record's error
// unchanged.
func (s *Store) RecordWebhookAttempt(ctx context.Context, owner, deliveryID string, record func(*domain.WebhookDelivery, *domain.Webhook) error) error {
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		row := new(webhookDeliveryRow)
		q := tx.NewSelect().Model(row).Where("?TableAlias.id = ?", deliveryID)
		if s.isPostgres() {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); errors.Is(err, sql.ErrNoRows) {
			return domain.Errorf(domain.ENOTFOUND, "webhook delivery %q not found", deliveryID)
		} else if err != nil {
			return fmt.Errorf("load webhook delivery %s: %w", deliveryID, translate(err))
		}
		if row.LeaseOwner != owner || row.Status != string(domain.WebhookPending) {
			return domain.Errorf(domain.ECONFLICT, "webhook delivery %s is not leased to %s", deliveryID, owner)
		}
		hook := new(webhookRow)
		hq := tx.NewSelect().Model(hook).Where("?TableAlias.id = ?", row.WebhookID)
		if s.isPostgres() {
			hq = hq.For("UPDATE")
		}
		if err := hq.Scan(ctx); errors.Is(err, sql.ErrNoRows) {
			return webhookNotFound(row.WebhookID)
		} else if err != nil {
			return fmt.Errorf("load webhook %s: %w", row.WebhookID, translate(err))
		}
		w, err := s.webhookOf(hook)
		if err != nil {
			return err
		}
		loaded := secretsOf(w)
		d := row.delivery()
		if err := record(d, w); err != nil {
			return err
		}
		if d.ID != deliveryID || w.ID != row.WebhookID || d.WebhookID != w.ID {
			return fmt.Errorf("record webhook attempt %s: the record changed an ID", deliveryID)
		}
		saved := newWebhookDeliveryRow(d)
		if _, err := tx.NewUpdate().Model(saved).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("record webhook attempt %s: %w", deliveryID, translate(err))
		}
		hook, err = s.updatedWebhookRow(hook, loaded, w)
		if err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(hook).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("record webhook attempt %s: webhook: %w", deliveryID, translate(err))
		}
		return nil
	})
}
