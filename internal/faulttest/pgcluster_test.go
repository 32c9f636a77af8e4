package faulttest

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/testenv"
	"github.com/uptrace/bun/driver/pgdriver"
)

// TestPGCluster checks the suite's own database: it answers, keeps its data
// across `-m fast` and `-m immediate` restarts, and hangs while paused.
func TestPGCluster(t *testing.T) {
	requireFaults(t)
	pg := testenv.StartPGCluster(t)
	if strings.Contains(pg.URL(), ":5432/") {
		t.Fatalf("the suite's cluster took the default port: %s", pg.URL())
	}
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(pg.URL())))
	t.Cleanup(func() { _ = db.Close() })
	exec := func(timeout time.Duration, q string) error {
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		_, err := db.ExecContext(ctx, q)
		return err
	}
	if err := exec(10*time.Second, `CREATE TABLE kept (n int); INSERT INTO kept VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, mode := range []string{"fast", "immediate"} {
		if err := pg.Restart(mode); err != nil {
			t.Fatalf("restart -m %s: %v\n%s", mode, err, pg.LogTail(20))
		}
		var n int
		// The pool's connections died with the server: retry once.
		if _, err := retry(ctx, func() error { return db.QueryRowContext(ctx, `SELECT count(*) FROM kept`).Scan(&n) }); err != nil || n != 1 {
			t.Fatalf("after restart -m %s: %d rows, %v", mode, n, err)
		}
	}

	if err := pg.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := exec(500*time.Millisecond, `SELECT 1`)
	if err := pg.Resume(); err != nil {
		t.Fatal(err)
	}
	if paused == nil {
		t.Error("a query was answered while the cluster was paused")
	}
	if _, err := retry(ctx, func() error { return exec(5*time.Second, `SELECT 1`) }); err != nil {
		t.Fatalf("after resume: %v", err)
	}
}
