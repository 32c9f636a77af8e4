package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

// CreateAPIKey inserts k with its allowed CIDRs and appends audit (unless it
// is nil) in the same transaction. It returns ECONFLICT if a key with k's ID
// exists, and EUNAUTHENTICATED if k's creator has been revoked (see
// lockCreator).
func (s *Store) CreateAPIKey(ctx context.Context, k *domain.APIKey, audit *domain.AuditEntry) error {
	k.Version = 1
	row := newAPIKeyRow(k)
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if err := s.lockCreator(ctx, tx, k.CreatedBy); err != nil {
			return err
		}
		if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
			if isUniqueViolation(err) {
				return domain.Errorf(domain.ECONFLICT, "API key %q already exists", k.ID)
			}
			return fmt.Errorf("insert API key %s: %w", k.ID, translate(err))
		}
		if err := insertAllowedIPs(ctx, tx, row); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

// FindAPIKeyByID returns the key with the given ID. It returns ENOTFOUND if
// there is none.
func (s *Store) FindAPIKeyByID(ctx context.Context, id string) (*domain.APIKey, error) {
	row := new(apiKeyRow)
	err := s.db.NewSelect().Model(row).
		Relation("AllowedIPs").
		Where("?TableAlias.id = ?", id).
		Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, apiKeyNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("find API key %s: %w", id, translate(err))
	}
	return row.apiKey()
}

// FindAPIKeys returns the keys whose IDs sort after f.AfterID (and, when
// f.CreatedBy is set, that key created), in ID order, at most f.Limit of
// them (all when f.Limit is 0).
func (s *Store) FindAPIKeys(ctx context.Context, f domain.APIKeyFilter) ([]*domain.APIKey, error) {
	var rows []*apiKeyRow
	q := s.db.NewSelect().Model(&rows).
		Relation("AllowedIPs").
		OrderExpr("?TableAlias.id ASC")
	if f.AfterID != "" {
		q = q.Where("?TableAlias.id > ?", f.AfterID)
	}
	if f.CreatedBy != "" {
		q = q.Where("?TableAlias.created_by = ?", f.CreatedBy)
	}
	if f.Limit > 0 {
		q = q.Limit(int64(f.Limit))
	}
	if err := q.Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find API keys: %w", translate(err))
	}
	keys := make([]*domain.APIKey, 0, len(rows))
	for _, r := range rows {
		k, err := r.apiKey()
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// UpdateAPIKey loads the key, calls update on it and saves the result with its
// allowed CIDRs, all in one transaction that holds the key's row lock (on
// SQLite, the database's write lock), so concurrent updates never lose one
// another's changes. audit, unless nil, is appended in the same transaction,
// and so are the key.revoked outbox rows when the update revokes the key.
// It returns ENOTFOUND if there is no such key, and update's error unchanged,
// having saved nothing, if update fails.
func (s *Store) UpdateAPIKey(ctx context.Context, id string, update func(*domain.APIKey) error, audit *domain.AuditEntry) (*domain.APIKey, error) {
	var saved *domain.APIKey
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		k, err := s.lockAPIKey(ctx, tx, id)
		if err != nil {
			return err
		}
		wasRevoked, version := k.RevokedAt != nil, k.Version
		if err := update(k); err != nil {
			return err
		}
		k.Version = version + 1
		if k.ID != id {
			return fmt.Errorf("update API key %s: the update changed its ID to %q", id, k.ID)
		}
		row := newAPIKeyRow(k)
		if _, err := tx.NewUpdate().Model(row).WherePK().Exec(ctx); err != nil {
			return fmt.Errorf("update API key %s: %w", id, translate(err))
		}
		if _, err := tx.NewDelete().Model((*allowedIPRow)(nil)).Where("key_id = ?", id).Exec(ctx); err != nil {
			return fmt.Errorf("update API key %s: delete allowed IPs: %w", id, translate(err))
		}
		if err := insertAllowedIPs(ctx, tx, row); err != nil {
			return err
		}
		if saved, err = row.apiKey(); err != nil {
			return err
		}
		if !wasRevoked && saved.RevokedAt != nil {
			if err := s.appendWebhookEvents(ctx, tx, domain.KeyRevokedEvent(saved)); err != nil {
				return err
			}
		}
		return s.appendAudit(ctx, tx, audit)
	})
	if err != nil {
		return nil, err
	}
	return saved, nil
}

// APIKeyVersions returns the versions of the stored keys among ids, reading
// them in batches so that a long list stays within the drivers' limits on
// bound parameters.
func (s *Store) APIKeyVersions(ctx context.Context, ids []string) (map[string]int64, error) {
	versions := make(map[string]int64, len(ids))
	for batch := range slices.Chunk(ids, 500) {
		var rows []struct {
			ID      string `bun:"id"`
			Version int64  `bun:"version"`
		}
		err := s.db.NewSelect().Table("api_keys").Column("id", "version").
			Where("id IN (?)", bun.List(batch)).Scan(ctx, &rows)
		if err != nil {
			return nil, fmt.Errorf("read API key versions: %w", translate(err))
		}
		for _, r := range rows {
			versions[r.ID] = r.Version
		}
	}
	return versions, nil
}

// TouchAPIKeys records when keys were last used, all in one transaction. A
// stored time later than the given one is kept; unknown IDs are ignored.
func (s *Store) TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error {
	if len(lastUsed) == 0 {
		return nil
	}
	// Sorted, so concurrent batches take row locks in the same order and
	// cannot deadlock on Postgres.
	ids := slices.Sorted(maps.Keys(lastUsed))
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		for _, id := range ids {
			at := storedTime(lastUsed[id])
			_, err := tx.NewUpdate().Model((*apiKeyRow)(nil)).
				Set("last_used_at = ?", at).
				Where("id = ?", id).
				Where("(last_used_at IS NULL OR last_used_at < ?)", at).
				Exec(ctx)
			if err != nil {
				return fmt.Errorf("touch API key %s: %w", id, translate(err))
			}
		}
		return nil
	})
}

// lockAPIKey loads a key inside tx, locking its row on Postgres. It returns
// ENOTFOUND if there is no such key.
func (s *Store) lockAPIKey(ctx context.Context, tx bun.Tx, id string) (*domain.APIKey, error) {
	row := new(apiKeyRow)
	q := tx.NewSelect().Model(row).Where("?TableAlias.id = ?", id)
	if s.isPostgres() {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); errors.Is(err, sql.ErrNoRows) {
		return nil, apiKeyNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("load API key %s: %w", id, translate(err))
	}
	err := tx.NewSelect().Model(&row.AllowedIPs).
		Where("key_id = ?", id).
		Order("position").
		Scan(ctx)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("load API key %s: allowed IPs: %w", id, translate(err))
	}
	return row.apiKey()
}

func insertAllowedIPs(ctx context.Context, tx bun.Tx, row *apiKeyRow) error {
	if len(row.AllowedIPs) == 0 {
		return nil
	}
	if _, err := tx.NewInsert().Model(&row.AllowedIPs).Exec(ctx); err != nil {
		return fmt.Errorf("insert allowed IPs of API key %s: %w", row.ID, translate(err))
	}
	return nil
}

func apiKeyNotFound(id string) error {
	return domain.Errorf(domain.ENOTFOUND, "API key %q not found", id)
}
