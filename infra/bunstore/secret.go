package bunstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun"

	"github.com/rdev-hq/rdev/domain"
)

var _ domain.SecretRepository = (*Store)(nil)

// secretRow is a row of secrets: the value only sealed.
type secretRow struct {
	bun.BaseModel `bun:"table:secrets,alias:s"`

	ProjectID string    `bun:"project_id,pk"`
	Name      string    `bun:"name,pk"`
	Sealed    []byte    `bun:"sealed"`
	Delivery  string    `bun:"delivery"`
	CreatedBy string    `bun:"created_by,nullzero"`
	CreatedAt time.Time `bun:"created_at"`
	UpdatedAt time.Time `bun:"updated_at"`
}

// secretKeyCheckRow is the one row of secret_key_check.
type secretKeyCheckRow struct {
	bun.BaseModel `bun:"table:secret_key_check,alias:k"`

	ID        int       `bun:"id,pk"`
	Sealed    []byte    `bun:"sealed"`
	UpdatedAt time.Time `bun:"updated_at"`
}

// delivery returns d as stored: "" is SecretAsEnv.
func delivery(d domain.SecretDelivery) string {
	if d == "" {
		return string(domain.SecretAsEnv)
	}
	return string(d)
}

func (r *secretRow) secret() *domain.Secret {
	return &domain.Secret{
		ProjectID: r.ProjectID, Name: r.Name, Delivery: domain.SecretDelivery(r.Delivery), CreatedBy: r.CreatedBy,
		CreatedAt: storedTime(r.CreatedAt), UpdatedAt: storedTime(r.UpdatedAt),
	}
}

// PutSecret inserts s, or replaces the sealed value and update time of the
// secret of its project and name, and appends audit unless it is nil, in
// one transaction (holding the database's write lock on SQLite, the
// project's rows' locks on Postgres, so the limit holds under concurrent
// inserts). It returns ECONFLICT if the project has limit secrets already.
func (s *Store) PutSecret(ctx context.Context, sec *domain.SealedSecret, limit int, audit *domain.AuditEntry) (*domain.Secret, error) {
	var saved *domain.Secret
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if s.isPostgres() {
			// Serialise the inserts of one project, so that two cannot both
			// see room for one more.
			if _, err := tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(hashtext(?))", "rdev secrets "+sec.ProjectID); err != nil {
				return fmt.Errorf("lock secrets of %s: %w", sec.ProjectID, translate(err))
			}
		}
		row := new(secretRow)
		err := tx.NewSelect().Model(row).
			Where("?TableAlias.project_id = ? AND ?TableAlias.name = ?", sec.ProjectID, sec.Name).Scan(ctx)
		switch {
		case err == nil:
			row.Sealed, row.Delivery, row.UpdatedAt = sec.Sealed, delivery(sec.Delivery), storedTime(sec.UpdatedAt)
			if _, err := tx.NewUpdate().Model(row).Column("sealed", "delivery", "updated_at").WherePK().Exec(ctx); err != nil {
				return fmt.Errorf("update secret %s of %s: %w", sec.Name, sec.ProjectID, translate(err))
			}
		case errors.Is(err, sql.ErrNoRows):
			n, err := tx.NewSelect().Model((*secretRow)(nil)).Where("project_id = ?", sec.ProjectID).Count(ctx)
			if err != nil {
				return fmt.Errorf("count secrets of %s: %w", sec.ProjectID, translate(err))
			}
			if n >= int64(limit) {
				return domain.Errorf(domain.ECONFLICT, "project %q has %d secrets, the most it may have: delete one first", sec.ProjectID, n)
			}
			row = &secretRow{
				ProjectID: sec.ProjectID, Name: sec.Name, Sealed: sec.Sealed, Delivery: delivery(sec.Delivery), CreatedBy: sec.CreatedBy,
				CreatedAt: storedTime(sec.CreatedAt), UpdatedAt: storedTime(sec.UpdatedAt),
			}
			if _, err := tx.NewInsert().Model(row).Exec(ctx); err != nil {
				if isUniqueViolation(err) {
					return domain.Errorf(domain.ECONFLICT, "secret %q of project %q is being set by another request; try again", sec.Name, sec.ProjectID)
				}
				return fmt.Errorf("insert secret %s of %s: %w", sec.Name, sec.ProjectID, translate(err))
			}
		default:
			return fmt.Errorf("find secret %s of %s: %w", sec.Name, sec.ProjectID, translate(err))
		}
		saved = row.secret()
		return s.appendAudit(ctx, tx, audit)
	})
	if err != nil {
		return nil, err
	}
	return saved, nil
}

// DeleteSecret removes a secret and appends audit unless it is nil, in one
// transaction. It returns ENOTFOUND if there is none.
func (s *Store) DeleteSecret(ctx context.Context, projectID, name string, audit *domain.AuditEntry) error {
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		res, err := tx.NewDelete().Model((*secretRow)(nil)).
			Where("project_id = ? AND name = ?", projectID, name).Exec(ctx)
		if err != nil {
			return fmt.Errorf("delete secret %s of %s: %w", name, projectID, translate(err))
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("delete secret %s of %s: %w", name, projectID, err)
		} else if n == 0 {
			return domain.Errorf(domain.ENOTFOUND, "project %q has no secret %q", domain.Clip(projectID), domain.Clip(name))
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

func (s *Store) findSecretRows(ctx context.Context, projectID string, columns ...string) ([]*secretRow, error) {
	var rows []*secretRow
	err := s.db.NewSelect().Model(&rows).Column(columns...).
		Where("?TableAlias.project_id = ?", projectID).OrderExpr("?TableAlias.name ASC").Scan(ctx)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find secrets of %s: %w", projectID, translate(err))
	}
	return rows, nil
}

// FindSecrets returns a project's secrets sorted by name, without their
// sealed values (which are not even read).
func (s *Store) FindSecrets(ctx context.Context, projectID string) ([]*domain.Secret, error) {
	rows, err := s.findSecretRows(ctx, projectID, "project_id", "name", "delivery", "created_by", "created_at", "updated_at")
	if err != nil {
		return nil, err
	}
	out := make([]*domain.Secret, len(rows))
	for i, r := range rows {
		out[i] = r.secret()
	}
	return out, nil
}

// FindSecretsOf returns the secrets of each of projectIDs, sorted by name
// and without their sealed values, by project, in one query.
func (s *Store) FindSecretsOf(ctx context.Context, projectIDs []string) (map[string][]*domain.Secret, error) {
	out := make(map[string][]*domain.Secret)
	if len(projectIDs) == 0 {
		return out, nil
	}
	var rows []*secretRow
	err := s.db.NewSelect().Model(&rows).Column("project_id", "name", "delivery", "created_by", "created_at", "updated_at").
		Where("?TableAlias.project_id IN (?)", bun.List(projectIDs)).
		OrderExpr("?TableAlias.project_id ASC, ?TableAlias.name ASC").Scan(ctx)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find secrets of %d projects: %w", len(projectIDs), translate(err))
	}
	for _, r := range rows {
		out[r.ProjectID] = append(out[r.ProjectID], r.secret())
	}
	return out, nil
}

// FindSealedSecrets returns a project's secrets sorted by name, with their
// sealed values.
func (s *Store) FindSealedSecrets(ctx context.Context, projectID string) ([]*domain.SealedSecret, error) {
	rows, err := s.findSecretRows(ctx, projectID)
	if err != nil {
		return nil, err
	}
	out := make([]*domain.SealedSecret, len(rows))
	for i, r := range rows {
		out[i] = &domain.SealedSecret{Secret: *r.secret(), Sealed: r.Sealed}
	}
	return out, nil
}

// SecretKeyCheck returns the stored key check, ENOTFOUND if there is none.
func (s *Store) SecretKeyCheck(ctx context.Context) ([]byte, error) {
	row := new(secretKeyCheckRow)
	err := s.db.NewSelect().Model(row).Where("?TableAlias.id = 1").Scan(ctx)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, domain.Errorf(domain.ENOTFOUND, "no secrets key check is stored")
	} else if err != nil {
		return nil, fmt.Errorf("find secrets key check: %w", translate(err))
	}
	return row.Sealed, nil
}

// InitSecretKeyCheck stores check unless a key check is stored already, and
// returns the one stored.
func (s *Store) InitSecretKeyCheck(ctx context.Context, check []byte) ([]byte, error) {
	row := &secretKeyCheckRow{ID: 1, Sealed: check, UpdatedAt: storedTime(time.Now())}
	if _, err := s.db.NewInsert().Model(row).On("CONFLICT (id) DO NOTHING").Exec(ctx); err != nil {
		return nil, fmt.Errorf("store secrets key check: %w", translate(err))
	}
	return s.SecretKeyCheck(ctx)
}

// RewrapSecrets calls rewrap on every sealed value stored, projects'
// secrets, webhook endpoints' signing secrets and queued commands' env
// values, and saves the values it
// returns, and replaces the key check with check, in one transaction. It
// returns how many values it rewrapped, or rewrap's first error wrapped
// with what it was rewrapping, having saved nothing.
func (s *Store) RewrapSecrets(ctx context.Context, rewrap func(sealed, ad []byte) ([]byte, error), check []byte) (int, error) {
	n := 0
	err := s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		var rows []*secretRow
		q := tx.NewSelect().Model(&rows).OrderExpr("?TableAlias.project_id, ?TableAlias.name")
		if s.isPostgres() {
			q = q.For("UPDATE")
		}
		if err := q.Scan(ctx); err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("load secrets: %w", translate(err))
		}
		for _, r := range rows {
			sealed, err := rewrap(r.Sealed, domain.SecretAD(r.ProjectID, r.Name))
			if err != nil {
				return fmt.Errorf("secret %s of project %s: %w", r.Name, r.ProjectID, err)
			}
			r.Sealed = sealed
			if _, err := tx.NewUpdate().Model(r).Column("sealed").WherePK().Exec(ctx); err != nil {
				return fmt.Errorf("save secret %s of %s: %w", r.Name, r.ProjectID, translate(err))
			}
		}
		hooks, err := s.rewrapWebhookSecrets(ctx, tx, rewrap)
		if err != nil {
			return err
		}
		envs, err := s.rewrapCommandEnv(ctx, tx, rewrap)
		if err != nil {
			return err
		}
		row := &secretKeyCheckRow{ID: 1, Sealed: check, UpdatedAt: storedTime(time.Now())}
		if _, err := tx.NewInsert().Model(row).On("CONFLICT (id) DO UPDATE").
			Set("sealed = EXCLUDED.sealed, updated_at = EXCLUDED.updated_at").Exec(ctx); err != nil {
			return fmt.Errorf("store secrets key check: %w", translate(err))
		}
		n = len(rows) + hooks + envs
		return nil
	})
	return n, err
}

// rewrapCommandEnv calls rewrap, inside tx, on every sealed env value of a
// queued command (domain.SealedTextPrefix) and saves what it returns, and
// returns how many it rewrapped. The commands that have started hold no
// values.
func (s *Store) rewrapCommandEnv(ctx context.Context, tx bun.Tx, rewrap func(sealed, ad []byte) ([]byte, error)) (int, error) {
	var rows []envRow
	q := tx.NewSelect().Model((*commandRow)(nil)).Column("id", "env").
		Where("status = ?", string(domain.CommandQueued)).Where("env <> ?", s.emptyEnv()).OrderExpr("id")
	if s.isPostgres() {
		q = q.For("UPDATE")
	}
	if err := q.Scan(ctx, &rows); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("load queued commands' env: %w", translate(err))
	}
	n := 0
	for _, r := range rows {
		changed := false
		for name, v := range r.Env {
			text, sealed, err := domain.RewrapText(v, domain.CommandEnvAD(r.ID, name), rewrap)
			if err != nil {
				return 0, fmt.Errorf("env %s of command %s: %w", name, r.ID, err)
			}
			if sealed {
				r.Env[name] = text
				changed = true
				n++
			}
		}
		if !changed {
			continue
		}
		env, err := json.Marshal(r.Env)
		if err != nil {
			return 0, fmt.Errorf("save env of command %s: %w", r.ID, err)
		}
		if _, err := tx.NewUpdate().Model((*commandRow)(nil)).Set("env = ?", string(env)).Where("id = ?", r.ID).Exec(ctx); err != nil {
			return 0, fmt.Errorf("save env of command %s: %w", r.ID, translate(err))
		}
	}
	return n, nil
}
