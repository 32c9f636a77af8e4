package bunstore

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

func TestCommandRow(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		zone := time.FixedZone("X", -7*3600)
		created := time.Date(2026, 11, 23, 10, 0, 0, 123456789, zone)
		c := &domain.Command{
			ID: "06h0i1vtve0e24r9", ProjectID: "web", KeyID: "k", Type: domain.CommandShell,
			Argv: []string{"sh", "-c", "x"}, Env: map[string]string{"A": "1"}, Workdir: "src",
			Priority: domain.PriorityUrgent, Timeout: 1500*time.Millisecond + 999*time.Microsecond,
			ClientToken: "tok", Status: domain.CommandRunning, ExitCode: new(int), Signal: "SIGKILL",
			CreatedAt: created, StartedAt: &created, OutputBytes: 7, Truncated: true, LastSeq: 3,
			CancelRequested: true, Owner: "d1", LeaseExpiresAt: &created,
		}
		got := newCommandRow(c).command()
		want := c.Clone()
		want.Timeout = 1500 * time.Millisecond // whole milliseconds
		want.CreatedAt = created.UTC().Truncate(time.Microsecond)
		want.StartedAt, want.LeaseExpiresAt = &want.CreatedAt, &want.CreatedAt
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
		if got.CreatedAt.Location() != time.UTC || got.StartedAt.Location() != time.UTC {
			t.Errorf("times not in UTC: %v, %v", got.CreatedAt, got.StartedAt)
		}
	})

	t.Run("NotNullColumns", func(t *testing.T) {
		row := newCommandRow(&domain.Command{ID: "x"})
		if row.Argv == nil || row.Env == nil {
			t.Errorf("argv %#v, env %#v: want an empty array and object, not NULL", row.Argv, row.Env)
		}
		if c := row.command(); c.Env != nil {
			t.Errorf("an empty environment came back as %#v, want nil", c.Env)
		}
		if o := newOutputRow(domain.OutputChunk{Seq: 1, Stream: domain.Stdout}); o.Data == nil {
			t.Error("empty output data is NULL, want empty bytes")
		}
	})
}

func TestIsForeignKeyViolation(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"PGForeignKey", fmt.Errorf("x: %w", fakePGError{'C': "23503"}), true},
		{"PGUnique", fakePGError{'C': "23505"}, false},
		{"SQLiteForeignKey", &fakeSQLiteError{787, "FOREIGN KEY constraint failed"}, true},
		{"SQLitePlainConstraint", &fakeSQLiteError{19, "constraint failed: FOREIGN KEY constraint failed"}, true},
		{"SQLiteUnique", &fakeSQLiteError{2067, "UNIQUE constraint failed: t.c"}, false},
		{"Other", errors.New("FOREIGN KEY constraint failed"), false},
		{"Nil", nil, false},
	}
	for _, tt := range tests {
		if got := isForeignKeyViolation(tt.err); got != tt.want {
			t.Errorf("%s: isForeignKeyViolation(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestOutputBatches(t *testing.T) {
	chunk := func(seq int64, size int) domain.OutputChunk {
		return domain.OutputChunk{CommandID: "c", Seq: seq, Stream: domain.Stdout, Data: string(make([]byte, size))}
	}
	var many []domain.OutputChunk
	for i := range 2001 {
		many = append(many, chunk(int64(i+1), 1))
	}
	big := outputBytesPerStatement/2 + 1
	tests := []struct {
		name   string
		chunks []domain.OutputChunk
		want   []int // chunks per batch
	}{
		{"One", many[:1], []int{1}},
		{"ByRows", many, []int{1000, 1000, 1}},
		{"ByBytes", []domain.OutputChunk{chunk(1, big), chunk(2, big), chunk(3, 1), chunk(4, big)}, []int{1, 2, 1}},
		{"HugeChunkAlone", []domain.OutputChunk{chunk(1, 1), chunk(2, 3*outputBytesPerStatement), chunk(3, 1)}, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		batches, err := outputBatches(tt.chunks)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		var got []int
		for _, b := range batches {
			got = append(got, len(b))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: batch sizes (-want +got):\n%s", tt.name, diff)
		}
	}
}
