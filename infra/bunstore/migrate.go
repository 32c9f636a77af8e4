package bunstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

// bun's bookkeeping tables (its defaults, named here for messages and checks).
const (
	migrationsTable     = "bun_migrations"
	migrationLocksTable = "bun_migration_locks"
)

// How long Migrate and MigrateDown wait for another process's migration lock,
// and how often they look. Replicas starting together queue behind the first.
const (
	migrationLockWait = time.Minute
	migrationLockPoll = 250 * time.Millisecond
	unlockTimeout     = 10 * time.Second
)

// MigrationState is one migration and whether the database has applied it.
type MigrationState struct {
	// Name is the migration's version and name, e.g. "20261123000001_api_keys".
	Name    string
	Applied bool
	// GroupID numbers the Migrate call that applied it (0 if not applied);
	// MigrateDown rolls back the highest group.
	GroupID int64
	// MigratedAt is when it was applied (zero if not applied).
	MigratedAt time.Time
}

// Migrate applies every migration of ms the database lacks, as one group,
// each in its own transaction, holding bun's migration lock meanwhile. It
// waits up to a minute for a lock held by another process. On failure the
// failing migration is rolled back and not marked applied; earlier ones stay.
func (s *Store) Migrate(ctx context.Context, ms *migrate.Migrations) error {
	return s.withMigrationLock(ctx, ms, func(m *migrate.Migrator) error {
		if _, err := m.Migrate(ctx); err != nil {
			return fmt.Errorf("migrate up: %w", err)
		}
		return nil
	})
}

// MigrateDown rolls back the most recently applied group of migrations, the
// last applied first, holding bun's migration lock meanwhile. With nothing
// applied it does nothing.
func (s *Store) MigrateDown(ctx context.Context, ms *migrate.Migrations) error {
	return s.withMigrationLock(ctx, ms, func(m *migrate.Migrator) error {
		if _, err := m.Rollback(ctx); err != nil {
			return fmt.Errorf("migrate down: %w", err)
		}
		return nil
	})
}

// MigrationStatus lists the migrations of ms in order, with whether each is
// applied. It changes nothing: on a database never migrated, all are pending.
func (s *Store) MigrationStatus(ctx context.Context, ms *migrate.Migrations) ([]MigrationState, error) {
	exists, err := s.tableExists(ctx, migrationsTable)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	sorted := ms.Sorted()
	if exists {
		if sorted, err = s.migrator(ms).MigrationsWithStatus(ctx); err != nil {
			return nil, fmt.Errorf("migration status: %w", err)
		}
	}
	out := make([]MigrationState, 0, len(sorted))
	for _, m := range sorted {
		st := MigrationState{Name: m.String(), Applied: m.IsApplied()}
		if st.Applied {
			st.GroupID, st.MigratedAt = m.GroupID, m.MigratedAt.UTC()
		}
		out = append(out, st)
	}
	return out, nil
}

// PendingMigrations returns how many migrations of ms are not yet applied,
// for readiness checks. It changes nothing.
func (s *Store) PendingMigrations(ctx context.Context, ms *migrate.Migrations) (int, error) {
	states, err := s.MigrationStatus(ctx, ms)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, st := range states {
		if !st.Applied {
			n++
		}
	}
	return n, nil
}

func (s *Store) migrator(ms *migrate.Migrations) *migrate.Migrator {
	// Marking a migration applied only once it succeeded keeps a failed one
	// pending, so fixing it and running Migrate again retries it.
	return migrate.NewMigrator(s.db, ms,
		migrate.WithTableName(migrationsTable),
		migrate.WithLocksTableName(migrationLocksTable),
		migrate.WithMarkAppliedOnSuccess(true))
}

// withMigrationLock creates bun's tables if needed and runs fn holding the
// migration lock. The lock is released even if ctx is cancelled.
func (s *Store) withMigrationLock(ctx context.Context, ms *migrate.Migrations, fn func(*migrate.Migrator) error) (err error) {
	m := s.migrator(ms)
	if err := initMigrations(ctx, m); err != nil {
		return err
	}
	if err := lockMigrations(ctx, m); err != nil {
		return err
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), unlockTimeout)
		defer cancel()
		if uerr := m.Unlock(uctx); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unlock migrations: %w", uerr))
		}
	}()
	return fn(m)
}

// initMigrations creates bun's tables if they do not exist. Two Postgres
// sessions creating the same table at once can both pass IF NOT EXISTS, and
// the loser fails; by then the table exists, so trying again succeeds.
func initMigrations(ctx context.Context, m *migrate.Migrator) error {
	var err error
	for range 3 {
		if err = m.Init(ctx); err == nil || !isCreateRace(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("create migration tables: %w", err)
	}
	return nil
}

// lockMigrations takes bun's lock, a row in bun_migration_locks, retrying
// while another process holds it.
func lockMigrations(ctx context.Context, m *migrate.Migrator) error {
	deadline := time.Now().Add(migrationLockWait)
	for {
		err := m.Lock(ctx)
		switch {
		case err == nil:
			return nil
		case !isUniqueViolation(err):
			return fmt.Errorf("lock migrations: %w", err)
		case time.Now().After(deadline):
			return fmt.Errorf("lock migrations: another process has held the lock for over %s "+
				"(if none is migrating, a crashed one left it: delete its row from %s): %w",
				migrationLockWait, migrationLocksTable, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("lock migrations: %w", ctx.Err())
		case <-time.After(migrationLockPoll):
		}
	}
}

// tableExists reports whether a table is visible to unqualified queries (on
// Postgres, through search_path), without creating anything.
func (s *Store) tableExists(ctx context.Context, name string) (bool, error) {
	var exists bool
	var err error
	switch s.db.Dialect().Name() {
	case dialect.PG:
		err = s.db.NewRaw("SELECT to_regclass(?) IS NOT NULL", name).Scan(ctx, &exists)
	case dialect.SQLite:
		err = s.db.NewRaw("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?", name).Scan(ctx, &exists)
	default:
		return false, fmt.Errorf("table %s: unsupported dialect %s", name, s.db.Dialect().Name())
	}
	if err != nil {
		return false, fmt.Errorf("look for table %s: %w", name, err)
	}
	return exists, nil
}
