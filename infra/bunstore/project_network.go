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

var _ domain.ProjectNetworkRepository = (*Store)(nil)

// projectNetworkRow is a row of project_networks: the policy an admin set
// for a project.
type projectNetworkRow struct {
	bun.BaseModel `bun:"table:project_networks,alias:n"`

	ProjectID string    `bun:"project_id,pk"`
	Network   string    `bun:"network"`
	UpdatedAt time.Time `bun:"updated_at"`
}

// SetProjectNetwork stores n as the policy of project projectID, or removes
// the project's row when n is "", and appends audit unless it is nil, in
// one transaction.
func (s *Store) SetProjectNetwork(ctx context.Context, projectID string, n domain.ProjectNetwork, audit *domain.AuditEntry) error {
	return s.inTx(ctx, func(ctx context.Context, tx bun.Tx) error {
		if n == "" {
			if _, err := tx.NewDelete().Model((*projectNetworkRow)(nil)).Where("project_id = ?", projectID).Exec(ctx); err != nil {
				return fmt.Errorf("reset network of %s: %w", projectID, translate(err))
			}
			return s.appendAudit(ctx, tx, audit)
		}
		row := &projectNetworkRow{ProjectID: projectID, Network: string(n), UpdatedAt: storedTime(time.Now())}
		if _, err := tx.NewInsert().Model(row).On("CONFLICT (project_id) DO UPDATE").
			Set("network = EXCLUDED.network, updated_at = EXCLUDED.updated_at").Exec(ctx); err != nil {
			return fmt.Errorf("set network of %s: %w", projectID, translate(err))
		}
		return s.appendAudit(ctx, tx, audit)
	})
}

// FindProjectNetworks returns the policies set for those of the projects
// ids that have one.
func (s *Store) FindProjectNetworks(ctx context.Context, ids []string) (map[string]domain.ProjectNetwork, error) {
	out := map[string]domain.ProjectNetwork{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []*projectNetworkRow
	err := s.db.NewSelect().Model(&rows).Where("?TableAlias.project_id IN (?)", bun.List(ids)).Scan(ctx)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("find project networks: %w", translate(err))
	}
	for _, r := range rows {
		out[r.ProjectID] = domain.ProjectNetwork(r.Network)
	}
	return out, nil
}
