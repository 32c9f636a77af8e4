package bunstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

// sealedWebhookSecret marks a signing secret column that holds a sealed
// value (domain.SealText) rather than the secret itself; a secret in clear
// starts with domain.WebhookSecretPrefix.
const sealedWebhookSecret = domain.SealedTextPrefix

// SealWebhookSecretsWith makes the store seal the signing secrets of the
// webhook endpoints it writes from now on with sealer, bound to the
// endpoint's ID, and open the sealed ones it reads. Without it secrets are
// written in clear and a sealed one does not read. Call it before the store
// is used.
func (s *Store) SealWebhookSecretsWith(sealer domain.SecretSealer) {
	s.webhookSealer = sealer
}

// sealWebhookSecret returns the column value of secret, the signing secret
// of endpoint id: sealed when the store has a sealer, else as it is.
func (s *Store) sealWebhookSecret(id, secret string) (string, error) {
	if s.webhookSealer == nil || secret == "" {
		return secret, nil
	}
	sealed, err := domain.SealText(s.webhookSealer, secret, domain.WebhookSecretAD(id))
	if err != nil {
		return "", fmt.Errorf("seal the secret of webhook %s: %w", id, err)
	}
	return sealed, nil
}

// openWebhookSecret returns the signing secret that column, of endpoint id,
// holds: opened if it is sealed, else as it is.
func (s *Store) openWebhookSecret(id, column string) (string, error) {
	if s.webhookSealer == nil && strings.HasPrefix(column, sealedWebhookSecret) {
		return "", domain.Errorf(domain.EUNAVAILABLE, "webhook %s: its signing secret is sealed and no secrets key is configured (RDEV_SECRETS_KEY_FILE or RDEV_SECRETS_KEY)", id)
	}
	secret, _, err := domain.OpenText(s.webhookSealer, column, domain.WebhookSecretAD(id))
	if err != nil {
		return "", fmt.Errorf("webhook %s: signing secret: %w", id, err)
	}
	return secret, nil
}

// SealClearWebhookSecrets seals, in one transaction, the signing secrets
// still stored in clear (written before the store had a sealer), and
// returns how many it sealed: none the second time. It returns an error,
// sealing nothing, if the store has no sealer (SealWebhookSecretsWith).
func (s *Store) SealClearWebhookSecrets(ctx context.Context) (int, error) {
	if s.webhookSealer == nil {
		return 0, errors.New("seal webhook secrets: no sealer")
	}
	n := 0
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var rows []*webhookRow
		q := tx.NewSelect().Model(&rows).
			Where("?TableAlias.secret NOT LIKE ?", sealedWebhookSecret+"%").
			WhereOr("?TableAlias.previous_secret NOT LIKE ? AND ?TableAlias.previous_secret <> ''", sealedWebhookSecret+"%")
		if s.isPostgres() {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("find webhooks: %w", translate(err))
		}
		for _, r := range rows {
			for _, col := range []*string{&r.Secret, &r.PreviousSecret} {
				if strings.HasPrefix(*col, sealedWebhookSecret) {
					continue
				}
				sealed, err := s.sealWebhookSecret(r.ID, *col)
				if err != nil {
					return err
				}
				*col = sealed
			}
			if _, err := tx.NewUpdate().Model(r).Column("secret", "previous_secret").WherePK().Exec(ctx); err != nil {
				return fmt.Errorf("seal the secret of webhook %s: %w", r.ID, translate(err))
			}
		}
		n = len(rows)
		return nil
	})
	return n, err
}

// rewrapWebhookSecrets calls rewrap, inside tx, on every sealed signing
// secret and saves what it returns, and returns how many it rewrapped.
// Secrets in clear are left to SealClearWebhookSecrets.
func (s *Store) rewrapWebhookSecrets(ctx context.Context, tx bun.Tx, rewrap func(sealed, ad []byte) ([]byte, error)) (int, error) {
	var rows []*webhookRow
	q := tx.NewSelect().Model(&rows).OrderExpr("?TableAlias.id")
	if s.isPostgres() {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("load webhooks: %w", translate(err))
	}
	n := 0
	for _, r := range rows {
		changed := false
		for _, col := range []*string{&r.Secret, &r.PreviousSecret} {
			text, sealed, err := domain.RewrapText(*col, domain.WebhookSecretAD(r.ID), rewrap)
			if err != nil {
				return 0, fmt.Errorf("signing secret of webhook %s: %w", r.ID, err)
			}
			if sealed {
				*col = text
				changed = true
				n++
			}
		}
		if !changed {
			continue
		}
		if _, err := tx.NewUpdate().Model(r).Column("secret", "previous_secret").WherePK().Exec(ctx); err != nil {
			return 0, fmt.Errorf("save the secret of webhook %s: %w", r.ID, translate(err))
		}
	}
	return n, nil
}

// updatedWebhookRow converts w, loaded from old and changed since, to a
// row, keeping old's columns for the secrets w still has: sealing them
// afresh would rewrite them on every delivery attempt.
func (s *Store) updatedWebhookRow(old *webhookRow, loaded webhookSecrets, w *domain.Webhook) (*webhookRow, error) {
	r, err := s.newWebhookRow(w)
	if err != nil {
		return nil, err
	}
	if w.Secret == loaded.secret {
		r.Secret = old.Secret
	}
	if w.PreviousSecret == loaded.previous {
		r.PreviousSecret = old.PreviousSecret
	}
	return r, nil
}

// webhookSecrets are an endpoint's signing secrets as loaded.
type webhookSecrets struct{ secret, previous string }

func secretsOf(w *domain.Webhook) webhookSecrets {
	return webhookSecrets{w.Secret, w.PreviousSecret}
}
