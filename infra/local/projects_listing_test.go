package local_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/local"
)

// TestProjects_FindProjectsSeesChanges: the listing of the root kept
// between calls never hides a project added or removed since, including
// one added within the same tick of the file system's clock as the listing
// before it.
func TestProjects_FindProjectsSeesChanges(t *testing.T) {
	root := t.TempDir()
	p := local.NewProjects(root)
	ids := func() []string {
		t.Helper()
		ps, err := p.FindProjects(t.Context(), domain.ProjectFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, pr := range ps {
			out = append(out, pr.ID)
		}
		return out
	}
	want := func(w ...string) {
		t.Helper()
		if got := ids(); !slices.Equal(got, w) {
			t.Fatalf("projects %v, want %v", got, w)
		}
	}
	setMtime := func(mtime time.Time) {
		t.Helper()
		if err := os.Chtimes(root, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}

	// An old root: its listing is kept.
	mustMkdir(t, filepath.Join(root, "a"), time.Now())
	setMtime(time.Now().Add(-time.Hour))
	want("a")
	want("a")
	mustMkdir(t, filepath.Join(root, "b"), time.Now())
	want("a", "b")
	if err := os.Remove(filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	want("b")

	// A root whose time is not well before the listing (here, ahead of
	// this clock): a listing read now is not kept, so a change that
	// leaves the root's time as it was, as one in the same tick does, is
	// still seen.
	tick := time.Now().Add(time.Minute)
	setMtime(tick)
	want("b")
	mustMkdir(t, filepath.Join(root, "c"), time.Now())
	setMtime(tick)
	want("b", "c")
}
