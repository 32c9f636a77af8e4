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

// RevokeAPIKeyTree revokes the key id and its descendants in one
// transaction. The tree is read one generation at a time, each in its own
// statement that locks the rows it reads (on SQLite the transaction holds
// the database's write lock): a key being created by a key of the tree
// locks its creator first (see lockCreator), so it has either committed
// before its creator is locked here, and is found in the next generation,
// or it waits, sees its creator revoked and is not made. Locks are taken
// parents before children, the order every writer of keys follows, so
// overlapping revocations queue up instead of deadlocking. It returns
// ENOTFOUND if there is no key id, and check's error unchanged, having
// saved nothing, if check fails.
func (s *Store) RevokeAPIKeyTree(ctx context.Context, id string, at time.Time, check func(*domain.APIKey) error,
	audit func(*domain.APIKey, []*domain.APIKey) []*domain.AuditEntry) (*domain.APIKey, []*domain.APIKey, error) {
	at = storedTime(at)
	var root *domain.APIKey
	var revoked []*domain.APIKey
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var err error
		if root, err = s.lockAPIKey(ctx, tx, id); err != nil {
			return err
		}
		if err := check(root); err != nil {
			return err
		}
		tree := []*domain.APIKey{root}
		for parents := []string{id}; len(parents) > 0; {
			children, err := s.lockChildren(ctx, tx, parents)
			if err != nil {
				return err
			}
			parents = parents[:0]
			for _, k := range children {
				parents = append(parents, k.ID)
				if k.RevokedAt == nil {
					revoked = append(revoked, k)
				}
			}
			tree = append(tree, children...)
		}
		var changed []string
		var events []domain.WebhookEvent
		for _, k := range tree {
			if k.RevokedAt == nil {
				k.RevokedAt = new(at)
				k.Version++
				changed = append(changed, k.ID)
				events = append(events, domain.KeyRevokedEvent(k))
			}
		}
		if err := revokeAPIKeys(ctx, tx, changed, at); err != nil {
			return err
		}
		if err := disableWebhooksOf(ctx, tx, changed, at); err != nil {
			return err
		}
		if err := s.appendWebhookEvents(ctx, tx, events...); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, audit(root, revoked)...)
	})
	if err != nil {
		return nil, nil, err
	}
	return root, revoked, nil
}

// lockChildren loads, in ID order, the keys created by any of parents,
// locking their rows on Postgres.
func (s *Store) lockChildren(ctx context.Context, tx bun.Tx, parents []string) ([]*domain.APIKey, error) {
	var rows []*apiKeyRow
	q := tx.NewSelect().Model(&rows).
		Where("?TableAlias.created_by IN (?)", bun.List(parents)).
		OrderExpr("?TableAlias.id ASC")
	if s.isPostgres() {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find keys created by %d keys: %w", len(parents), translate(err))
	}
	if len(rows) == 0 {
		return nil, nil
	}
	byID := make(map[string]*apiKeyRow, len(rows))
	ids := make([]string, len(rows))
	for i, r := range rows {
		byID[r.ID], ids[i] = r, r.ID
	}
	var ips []*allowedIPRow
	err := tx.NewSelect().Model(&ips).Where("key_id IN (?)", bun.List(ids)).Scan(ctx)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find allowed IPs of %d keys: %w", len(ids), translate(err))
	}
	for _, ip := range ips {
		r := byID[ip.KeyID]
		r.AllowedIPs = append(r.AllowedIPs, ip)
	}
	keys := make([]*domain.APIKey, len(rows))
	for i, r := range rows {
		k, err := r.apiKey()
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
}

// revokeAPIKeys sets revoked_at on the keys ids, which the caller has
// locked and found not revoked, and raises their versions as every change
// to a key does (see UpdateAPIKey).
func revokeAPIKeys(ctx context.Context, tx bun.Tx, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.NewUpdate().Model((*apiKeyRow)(nil)).
		Set("revoked_at = ?", at).
		Set("version = version + 1").
		Where("id IN (?)", bun.List(ids)).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("revoke %d API keys: %w", len(ids), translate(err))
	}
	return nil
}

// disableWebhooksOf disables the enabled webhook endpoints created by the
// keys ids, at at.
func disableWebhooksOf(ctx context.Context, tx bun.Tx, ids []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.NewUpdate().Model((*webhookRow)(nil)).
		Set("enabled = ?", false).
		Set("disabled_reason = ?", domain.WebhookDisabledCreatorRevoked).
		Set("updated_at = ?", at).
		Where("created_by IN (?)", bun.List(ids)).
		Where("enabled = ?", true).
		Exec(ctx)
	if err != nil {
		return fmt.Errorf("disable the webhooks of %d revoked API keys: %w", len(ids), translate(err))
	}
	return nil
}

// lockCreator locks the row of the key that is creating another (on
// Postgres, FOR SHARE: creators do not wait for one another, only for
// RevokeAPIKeyTree) and returns EUNAUTHENTICATED if it has been revoked.
// An unknown creator is no error: keys are never deleted, so only data not
// made through the domain names one.
func (s *Store) lockCreator(ctx context.Context, tx bun.Tx, id string) error {
	if id == "" {
		return nil
	}
	row := new(apiKeyRow)
	q := tx.NewSelect().Model(row).Column("revoked_at").Where("id = ?", id)
	if s.isPostgres() {
		q = q.For("SHARE")
	}
	if err := q.Scan(ctx); errors.Is(err, sql.ErrNoRows) {
		return nil
	} else if err != nil {
		return fmt.Errorf("lock creator %s: %w", id, translate(err))
	}
	if row.RevokedAt != nil {
		return domain.Errorf(domain.EUNAUTHENTICATED, "API key %s has been revoked", id)
	}
	return nil
}
