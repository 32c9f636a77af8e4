package storetest

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun/migrate"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
)

// TestMigrations checks that the migrations ms returns apply, report their
// status, roll back and apply again on the empty databases open returns, one
// per subtest.
func TestMigrations(t *testing.T, open func(t *testing.T) *bunstore.Store, ms func() *migrate.Migrations) {
	t.Run("UpDownUp", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), t.Context()
		total := len(ms().Sorted())
		if total == 0 {
			t.Fatal("no migrations")
		}
		assertPending(t, s, ms(), total)

		if err := s.Migrate(ctx, ms()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		assertPending(t, s, ms(), 0)
		assertStatus(t, s, ms(), true, 1)
		k := newAPIKey()
		mustCreateAPIKey(t, ctx, s, k)

		// Up again is a no-op.
		if err := s.Migrate(ctx, ms()); err != nil {
			t.Fatalf("Migrate again: %v", err)
		}
		assertStatus(t, s, ms(), true, 1)
		mustFindAPIKey(t, ctx, s, k.ID)

		if err := s.MigrateDown(ctx, ms()); err != nil {
			t.Fatalf("MigrateDown: %v", err)
		}
		assertPending(t, s, ms(), total)
		assertStatus(t, s, ms(), false, 0)
		if _, err := s.FindAPIKeys(ctx, domain.APIKeyFilter{}); err == nil {
			t.Error("FindAPIKeys works after MigrateDown: the tables were not dropped")
		}
		// Down with nothing applied is a no-op.
		if err := s.MigrateDown(ctx, ms()); err != nil {
			t.Fatalf("MigrateDown with nothing applied: %v", err)
		}

		if err := s.Migrate(ctx, ms()); err != nil {
			t.Fatalf("Migrate after MigrateDown: %v", err)
		}
		assertPending(t, s, ms(), 0)
		if keys, err := s.FindAPIKeys(ctx, domain.APIKeyFilter{}); err != nil || len(keys) != 0 {
			t.Errorf("FindAPIKeys after down and up = %d keys, %v; want an empty table", len(keys), err)
		}
		mustCreateAPIKey(t, ctx, s, k)
	})

	t.Run("ClearsStartedEnv", func(t *testing.T) {
		// Commands stored before env values were cleared at start keep
		// them; the migration that brought the clearing clears them.
		t.Parallel()
		s, ctx := open(t), t.Context()
		before := migrate.NewMigrations()
		for _, m := range ms().Sorted() {
			if m.Name < envNamesMigration {
				before.Add(m)
			}
		}
		if len(before.Sorted()) == len(ms().Sorted()) {
			t.Fatalf("no migration %s", envNamesMigration)
		}
		if err := s.Migrate(ctx, before); err != nil {
			t.Fatalf("Migrate up to %s: %v", envNamesMigration, err)
		}
		cmds := map[domain.CommandStatus]*domain.Command{}
		for i, status := range []domain.CommandStatus{domain.CommandQueued, domain.CommandSucceeded, domain.CommandCancelled, domain.CommandInterrupted} {
			c := fullCommand("web", i)
			createOldCommand(t, s, c)
			if _, err := s.DB().ExecContext(ctx, "UPDATE commands SET status = ?, finished_at = created_at WHERE id = ? AND ? <> 'QUEUED'",
				string(status), c.ID, string(status)); err != nil {
				t.Fatalf("end %s: %v", c.ID, err)
			}
			cmds[status] = c
		}
		if err := s.Migrate(ctx, ms()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		for status, c := range cmds {
			got := mustFindCommand(t, ctx, s, c.ID)
			want := c.Env
			if status != domain.CommandQueued {
				want = map[string]string{"HOME": "", "EMPTY": "", "QUOTES": ""}
			}
			if diff := cmp.Diff(want, got.Env); diff != "" {
				t.Errorf("%s command's env after the migration (-want +got):\n%s", status, diff)
			}
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		s, ctx := open(t), t.Context()
		// Replicas starting together: one migrates, the others wait for the
		// lock and then find nothing to do.
		var wg sync.WaitGroup
		for i := range 3 {
			wg.Go(func() {
				if err := s.Migrate(ctx, ms()); err != nil {
					t.Errorf("Migrate #%d: %v", i, err)
				}
			})
		}
		wg.Wait()
		assertPending(t, s, ms(), 0)
		assertStatus(t, s, ms(), true, 1)
	})
}

// createOldCommand stores c, queued, in a schema that may lack the columns
// added later, writing only the columns it needs.
func createOldCommand(tb testing.TB, s *bunstore.Store, c *domain.Command) {
	tb.Helper()
	argv, err := json.Marshal(c.Argv)
	if err != nil {
		tb.Fatal(err)
	}
	env, err := json.Marshal(c.Env)
	if err != nil {
		tb.Fatal(err)
	}
	row := map[string]any{
		"id": c.ID, "project_id": c.ProjectID, "key_id": c.KeyID, "type": string(c.Type),
		"argv": string(argv), "env": string(env), "status": string(domain.CommandQueued), "created_at": c.CreatedAt.UTC(),
	}
	if _, err := s.DB().NewInsert().Model(&row).TableExpr("commands").Exec(tb.Context()); err != nil {
		tb.Fatalf("store %s in the old schema: %v", c.ID, err)
	}
}

// envNamesMigration is the migration that clears the env values of
// commands that have started.
const envNamesMigration = "20261207000015"

func assertPending(tb testing.TB, s *bunstore.Store, ms *migrate.Migrations, want int) {
	tb.Helper()
	n, err := s.PendingMigrations(tb.Context(), ms)
	if err != nil {
		tb.Fatalf("PendingMigrations: %v", err)
	}
	if n != want {
		tb.Errorf("PendingMigrations = %d, want %d", n, want)
	}
}

func assertStatus(tb testing.TB, s *bunstore.Store, ms *migrate.Migrations, applied bool, group int64) {
	tb.Helper()
	states, err := s.MigrationStatus(tb.Context(), ms)
	if err != nil {
		tb.Fatalf("MigrationStatus: %v", err)
	}
	if len(states) != len(ms.Sorted()) {
		tb.Errorf("MigrationStatus lists %d migrations, want %d", len(states), len(ms.Sorted()))
	}
	for _, st := range states {
		if st.Name == "" || st.Applied != applied || st.GroupID != group || st.MigratedAt.IsZero() == applied {
			tb.Errorf("migration state %+v, want applied=%v in group %d with a time iff applied", st, applied, group)
		}
	}
}
