package sqlite_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/sqlitedialect"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/sqlite"
	"github.com/rdev-hq/rdev/migrations"
)

// Output's bytes go to the segment files beside the database, not into it;
// a store opened again reads them and appends after them.
func TestOutput_InSegments(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rdev.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	ctx := t.Context()
	if err := s.Migrate(ctx, migrations.SQLite()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	c := mustCreateCommand(t, s)
	dbBefore := fileSize(t, path) + fileSize(t, path+"-wal")
	const size = 4 << 20
	at := time.Now().UTC().Truncate(time.Microsecond)
	var want []domain.OutputChunk
	for i := range 64 {
		want = append(want, domain.OutputChunk{CommandID: c.ID, Seq: int64(i + 1), Stream: domain.Stdout, Data: strings.Repeat(string(rune('a'+i%26)), size/64), At: at})
	}
	if err := s.AppendOutput(ctx, domain.Lease{}, want); err != nil {
		t.Fatalf("AppendOutput: %v", err)
	}
	if grew := fileSize(t, path) + fileSize(t, path+"-wal") - dbBefore; grew > size/8 {
		t.Errorf("the database and its WAL grew by %d bytes for %d bytes of output", grew, size)
	}
	if got := fileSize(t, filepath.Join(sqlite.OutputDir(path), "000000000001.out")); got != size {
		t.Errorf("segment holds %d bytes, want %d", got, size)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = mustOpenFile(t, path)
	more := domain.OutputChunk{CommandID: c.ID, Seq: 65, Stream: domain.Stderr, Data: "after reopening\n", At: at}
	if err := s.AppendOutput(ctx, domain.Lease{}, []domain.OutputChunk{more}); err != nil {
		t.Fatalf("AppendOutput: %v", err)
	}
	got, err := s.ReadOutput(ctx, c.ID, 0, 0, 0)
	if err != nil {
		t.Fatalf("ReadOutput: %v", err)
	}
	if diff := cmp.Diff(append(want, more), got); diff != "" {
		t.Errorf("output (-stored +read):\n%s", diff)
	}
}

// After a power failure that cut the segment short under rows the database
// kept, a reopened store writes new output to a new segment: the cut rows
// fail to read, with an error, and never return the new output.
func TestOutput_SegmentCutShort(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rdev.db")
	s := mustOpenFile(t, path)
	ctx := t.Context()
	if err := s.Migrate(ctx, migrations.SQLite()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	lost, kept := mustCreateCommand(t, s), mustCreateCommand(t, s)
	at := time.Now().UTC().Truncate(time.Microsecond)
	if err := s.AppendOutput(ctx, domain.Lease{}, []domain.OutputChunk{{CommandID: lost.ID, Seq: 1, Stream: domain.Stdout, Data: "cut off by the power failure\n", At: at}}); err != nil {
		t.Fatalf("AppendOutput: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := os.Truncate(filepath.Join(sqlite.OutputDir(path), "000000000001.out"), 3); err != nil {
		t.Fatal(err)
	}

	s = mustOpenFile(t, path)
	after := domain.OutputChunk{CommandID: kept.ID, Seq: 1, Stream: domain.Stdout, Data: "written after the restart\n", At: at}
	if err := s.AppendOutput(ctx, domain.Lease{}, []domain.OutputChunk{after}); err != nil {
		t.Fatalf("AppendOutput: %v", err)
	}
	if got, err := s.ReadOutput(ctx, lost.ID, 0, 0, 0); err == nil {
		t.Errorf("the cut chunk reads as %+v, want an error", got)
	}
	got, err := s.ReadOutput(ctx, kept.ID, 0, 0, 0)
	if err != nil {
		t.Fatalf("ReadOutput: %v", err)
	}
	if diff := cmp.Diff([]domain.OutputChunk{after}, got); diff != "" {
		t.Errorf("output (-stored +read):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(sqlite.OutputDir(path), "000000000002.out")); err != nil {
		t.Errorf("no new segment: %v", err)
	}
}

// Chunks stored with their bytes in the row, as before segments, read as
// they did, in order with the chunks stored after them in segments.
func TestOutput_RowsFromBeforeSegments(t *testing.T) {
	s := mustOpenMigrated(t)
	ctx := t.Context()
	c := mustCreateCommand(t, s)
	at := time.Now().UTC().Truncate(time.Microsecond)
	if _, err := s.DB().ExecContext(ctx, "INSERT INTO command_output (command_id, seq, stream, data, at, size) VALUES (?, 1, 'STDOUT', ?, ?, 9)",
		c.ID, []byte("in\x00the row"), at.Format("2006-01-02 15:04:05.999999-07:00")); err != nil {
		t.Fatal(err)
	}
	later := domain.OutputChunk{CommandID: c.ID, Seq: 2, Stream: domain.Stdout, Data: "in a segment", At: at}
	if err := s.AppendOutput(ctx, domain.Lease{}, []domain.OutputChunk{later}); err != nil {
		t.Fatalf("AppendOutput: %v", err)
	}
	got, err := s.ReadOutput(ctx, c.ID, 0, 0, 0)
	if err != nil {
		t.Fatalf("ReadOutput: %v", err)
	}
	want := []domain.OutputChunk{{CommandID: c.ID, Seq: 1, Stream: domain.Stdout, Data: "in\x00the row", At: at}, later}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// A store made without StoreOutputIn (not as Open makes one) keeps output
// bytes in their rows, and reads them back.
func TestOutput_InRows(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "rows.db")+"?_pragma=foreign_keys(ON)")
	if err != nil {
		t.Fatal(err)
	}
	s := bunstore.New(bun.NewDB(db, sqlitedialect.New()))
	t.Cleanup(func() { _ = s.Close() })
	ctx := t.Context()
	if err := s.Migrate(ctx, migrations.SQLite()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	c := mustCreateCommand(t, s)
	at := time.Now().UTC().Truncate(time.Microsecond)
	want := []domain.OutputChunk{
		{CommandID: c.ID, Seq: 1, Stream: domain.Stdout, Data: "bytes\x00\xff\n", At: at},
		{CommandID: c.ID, Seq: 2, Stream: domain.Stderr, Data: strings.Repeat("e", 70<<10), At: at},
	}
	if err := s.AppendOutput(ctx, domain.Lease{}, want); err != nil {
		t.Fatalf("AppendOutput: %v", err)
	}
	var inRows int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM command_output WHERE segment IS NULL AND length(data) = size").Scan(&inRows); err != nil {
		t.Fatal(err)
	}
	if inRows != len(want) {
		t.Errorf("%d of %d rows hold their bytes", inRows, len(want))
	}
	got, err := s.ReadOutput(ctx, c.ID, 0, 0, 0)
	if err != nil {
		t.Fatalf("ReadOutput: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output (-stored +read):\n%s", diff)
	}
}
