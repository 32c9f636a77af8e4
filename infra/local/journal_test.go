package local

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

func TestJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pending-results")
	j, err := NewJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 12, 7, 1, 2, 3, 4000, time.UTC)
	p := domain.PendingFinish{
		Lease: domain.Lease{CommandID: domain.NewID(started), Owner: "host/1:2.3/x", Epoch: 4},
		Finish: domain.Finish{Status: domain.CommandSucceeded, ExitCode: new(0), FinishedAt: started.Add(time.Second),
			OutputBytes: 10, LastSeq: 2, LostBytes: 1},
		KeyID: "key", ProjectID: "web", StartedAt: &started,
	}
	if err := j.Keep(p); err != nil {
		t.Fatal(err)
	}
	p.Finish.Reason = "kept again"
	if err := j.Keep(p); err != nil {
		t.Fatal(err)
	}
	// A temporary file a crash left behind is not a record.
	if err := os.WriteFile(filepath.Join(dir, "pending-123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A new journal on the same directory, as after a restart.
	j, err = NewJournal(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := j.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]domain.PendingFinish{p}, got); diff != "" {
		t.Errorf("Pending (-want +got):\n%s", diff)
	}
	if err := j.Drop(p.Lease.CommandID); err != nil {
		t.Fatal(err)
	}
	if err := j.Drop(p.Lease.CommandID); err != nil {
		t.Errorf("Drop of a record already dropped: %v", err)
	}
	if got, err := j.Pending(); err != nil || len(got) != 0 {
		t.Errorf("Pending after Drop = %v, %v; want none", got, err)
	}
	for _, bad := range []string{"", "../x", "a/b", "x.json"} {
		if err := j.Keep(domain.PendingFinish{Lease: domain.Lease{CommandID: bad}}); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("Keep(%q) = %v, want INVALID_INPUT", bad, err)
		}
	}
}
