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

// TestProjects_LabelsAddedLater: a project listed without labels gets them
// at the next listing once .rdev/labels is written, though the project's
// "no .rdev" is remembered between listings; and so does a project another
// directory with labels is renamed over, even one with the same time.
func TestProjects_LabelsAddedLater(t *testing.T) {
	root := t.TempDir()
	p := local.NewProjects(root)
	labels := func(id string) map[string]string {
		t.Helper()
		ps, err := p.FindProjects(t.Context(), domain.ProjectFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range ps {
			if pr.ID == id {
				return pr.Labels
			}
		}
		t.Fatalf("no project %s in %v", id, ps)
		return nil
	}
	old := time.Now().Add(-time.Hour)
	dir := filepath.Join(root, "web")
	mustMkdir(t, dir, old)
	for range 2 {
		if got := labels("web"); len(got) != 0 {
			t.Fatalf("labels %v, want none", got)
		}
	}
	mustWrite(t, filepath.Join(dir, ".rdev", "labels"), "team=a\n")
	if got := labels("web"); got["team"] != "a" {
		t.Fatalf("labels %v after writing .rdev/labels, want team=a", got)
	}

	// Another directory with labels takes the place of one without, with
	// the same time.
	mustMkdir(t, filepath.Join(root, "api"), old)
	if got := labels("api"); len(got) != 0 {
		t.Fatalf("labels %v, want none", got)
	}
	other := filepath.Join(t.TempDir(), "api")
	mustMkdir(t, other, old)
	mustWrite(t, filepath.Join(other, ".rdev", "labels"), "team=b\n")
	if err := os.Chtimes(other, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "api")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, filepath.Join(root, "api")); err != nil {
		t.Fatal(err)
	}
	if got := labels("api"); got["team"] != "b" {
		t.Fatalf("labels %v after the rename, want team=b", got)
	}
}
