package migrations_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun/migrate"

	"github.com/rdev-hq/rdev/migrations"
)

// Both dialects must describe the same schema history, and every step must be
// reversible.
func TestMigrations(t *testing.T) {
	pg, lite := names(t, migrations.Postgres()), names(t, migrations.SQLite())
	if len(pg) == 0 {
		t.Fatal("no Postgres migrations discovered")
	}
	if diff := cmp.Diff(pg, lite); diff != "" {
		t.Errorf("Postgres and SQLite migrations differ (-postgres +sqlite):\n%s", diff)
	}
}

func names(t *testing.T, ms *migrate.Migrations) []string {
	t.Helper()
	var out []string
	for _, m := range ms.Sorted() {
		if m.Up == nil || m.Down == nil {
			t.Errorf("migration %s: needs both an up and a down file", m)
		}
		out = append(out, m.String())
	}
	return out
}
