package local_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/local"
)

// openWatched returns the projects under root, already answering from
// memory.
func openWatched(t *testing.T, root string) *local.Projects {
	t.Helper()
	p := local.NewProjects(root)
	t.Cleanup(func() { _ = p.Close() })
	if _, err := p.FindProjects(t.Context(), domain.ProjectFilter{}); err != nil {
		t.Fatal(err)
	}
	if ok, err := local.Watched(p); !ok {
		t.Fatalf("projects under %s are not watched: %v", root, err)
	}
	return p
}

// agrees checks, with no waiting, that p answers as a read of the file
// system does: the listing and each project by ID (also the ids given,
// which may be gone). watched says whether p must still answer from memory.
func agrees(t *testing.T, p *local.Projects, watched bool, ids ...string) []*domain.Project {
	t.Helper()
	got, err := p.FindProjects(t.Context(), domain.ProjectFilter{})
	if err != nil {
		t.Fatal(err)
	}
	want, err := local.ReadProjects(t.Context(), p, domain.ProjectFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("listing differs from the file system (-want +got):\n%s", diff)
	}
	for _, pr := range want {
		ids = append(ids, pr.ID)
	}
	for _, id := range ids {
		got, gotErr := p.FindProjectByID(t.Context(), id)
		want, wantErr := local.ReadProject(p, id)
		if diff := cmp.Diff(want, got); diff != "" || domain.ErrorCode(gotErr) != domain.ErrorCode(wantErr) {
			t.Fatalf("project %s: %v, want %v (-want +got):\n%s", id, gotErr, wantErr, diff)
		}
	}
	if ok, err := local.Watched(p); ok != watched {
		t.Fatalf("watched %v (%v), want %v", ok, err, watched)
	}
	return got
}

func ids(ps []*domain.Project) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.ID)
	}
	return out
}

func labelsOf(ps []*domain.Project, id string) map[string]string {
	for _, p := range ps {
		if p.ID == id {
			return p.Labels
		}
	}
	return nil
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestProjectsWatch_SeesEveryChange: each kind of change under the root is
// seen by the very next call, which still answers from memory.
func TestProjectsWatch_SeesEveryChange(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "root")
	mustWrite(t, filepath.Join(root, "alpha", ".rdev", "labels"), "team=a\n")
	mustMkdir(t, filepath.Join(root, "beta"), t1)
	p := openWatched(t, root)
	agrees(t, p, true)
	path := func(s ...string) string { return filepath.Join(append([]string{root}, s...)...) }
	labels := func(id string) map[string]string {
		t.Helper()
		return labelsOf(agrees(t, p, true, id), id)
	}

	for _, c := range []struct {
		name   string
		change func()
		ids    []string // the projects listed after it
	}{
		{"project created", func() { must(t, os.Mkdir(path("gamma"), 0o750)) }, []string{"alpha", "beta", "gamma"}},
		{"project removed", func() { must(t, os.Remove(path("gamma"))) }, []string{"alpha", "beta"}},
		{"project renamed", func() { must(t, os.Rename(path("beta"), path("delta"))) }, []string{"alpha", "delta"}},
		{"symbolic link added", func() { must(t, os.Symlink("alpha", path("link"))) }, []string{"alpha", "delta"}},
		{"file added", func() { mustWrite(t, path("zeta"), "not a project\n") }, []string{"alpha", "delta"}},
		{"hidden directory added", func() { must(t, os.Mkdir(path(".cache"), 0o750)) }, []string{"alpha", "delta"}},
		{"directory renamed over a project", func() {
			mustWrite(t, filepath.Join(tmp, "new", ".rdev", "labels"), "team=new\n")
			must(t, os.RemoveAll(path("delta")))
			must(t, os.Rename(filepath.Join(tmp, "new"), path("delta")))
		}, []string{"alpha", "delta"}},
		{"project touched", func() { must(t, os.Chtimes(path("alpha"), t2, t2)) }, []string{"alpha", "delta"}},
		{"file added in a project", func() { mustWrite(t, path("alpha", "main.go"), "package main\n") }, []string{"alpha", "delta"}},
	} {
		c.change()
		if got := ids(agrees(t, p, true)); !slices.Equal(got, c.ids) {
			t.Fatalf("after %s: projects %v, want %v", c.name, got, c.ids)
		}
	}
	if got := labels("delta"); got["team"] != "new" {
		t.Fatalf("labels %v of the directory renamed in, want team=new", got)
	}

	// The labels file, every way it changes.
	lf := path("alpha", ".rdev", "labels")
	for _, c := range []struct {
		name   string
		change func()
		want   map[string]string
	}{
		{"rewritten in place", func() {
			f, err := os.OpenFile(lf, os.O_WRONLY|os.O_TRUNC, 0)
			must(t, err)
			_, err = f.WriteString("team=b\n")
			must(t, err)
			// Seen before it is closed, as a read of the file would.
			if got := labels("alpha"); got["team"] != "b" {
				t.Fatalf("labels %v while open, want team=b", got)
			}
			must(t, f.Close())
		}, map[string]string{"team": "b"}},
		{"appended to", func() {
			f, err := os.OpenFile(lf, os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			_, err = f.WriteString("tier=dev\n")
			must(t, err)
			must(t, f.Close())
		}, map[string]string{"team": "b", "tier": "dev"}},
		{"replaced by rename", func() {
			mustWrite(t, path("alpha", ".rdev", "labels.tmp"), "team=c\n")
			must(t, os.Rename(path("alpha", ".rdev", "labels.tmp"), lf))
		}, map[string]string{"team": "c"}},
		{"removed", func() { must(t, os.Remove(lf)) }, map[string]string{}},
		{"created", func() { mustWrite(t, lf, "team=d\n") }, map[string]string{"team": "d"}},
		{"made unreadable as a link", func() {
			mustWrite(t, filepath.Join(tmp, "outside-labels"), "team=outside\n")
			must(t, os.Remove(lf))
			must(t, os.Symlink(filepath.Join(tmp, "outside-labels"), lf))
		}, map[string]string{}},
		{"a hard link written through its other name", func() {
			other := filepath.Join(tmp, "linked-labels")
			mustWrite(t, other, "team=e\n")
			must(t, os.Remove(lf))
			must(t, os.Link(other, lf))
			if got := labels("alpha"); got["team"] != "e" {
				t.Fatalf("labels %v, want team=e", got)
			}
			must(t, os.WriteFile(other, []byte("team=f\n"), 0o600))
		}, map[string]string{"team": "f"}},
		{".rdev removed", func() { must(t, os.RemoveAll(path("alpha", ".rdev"))) }, map[string]string{}},
		{".rdev created", func() { mustWrite(t, lf, "team=g\n") }, map[string]string{"team": "g"}},
		{".rdev renamed away", func() { must(t, os.Rename(path("alpha", ".rdev"), path("alpha", "rdev.old"))) }, map[string]string{}},
		{".rdev renamed back", func() { must(t, os.Rename(path("alpha", "rdev.old"), path("alpha", ".rdev"))) }, map[string]string{"team": "g"}},
		{".rdev replaced by a link", func() {
			must(t, os.Rename(path("alpha", ".rdev"), path("alpha", "rdev.real")))
			must(t, os.Symlink("rdev.real", path("alpha", ".rdev")))
		}, map[string]string{}},
		{"the link's target changed", func() { mustWrite(t, path("alpha", "rdev.real", "labels"), "team=h\n") }, map[string]string{}},
	} {
		c.change()
		if got := labels("alpha"); !cmp.Equal(got, c.want) {
			t.Fatalf("labels %v after the labels file was %s, want %v", got, c.name, c.want)
		}
	}
}

// TestProjectsWatch_RootReplaced: the root removed, recreated, renamed
// away, or reached another way (an ancestor renamed, a link on the way
// retargeted) is seen at once; meanwhile the file system answers, and the
// projects are watched again once the root is there.
func TestProjectsWatch_RootReplaced(t *testing.T) {
	tmp := t.TempDir()
	root := filepath.Join(tmp, "via", "root")
	mustMkdir(t, filepath.Join(tmp, "real-a", "root", "one"), t1)
	mustMkdir(t, filepath.Join(tmp, "real-b", "root", "two"), t1)
	must(t, os.Symlink("real-a", filepath.Join(tmp, "via")))
	p := openWatched(t, root)
	local.SetRearmDelay(p, 0)
	want := func(w ...string) {
		t.Helper()
		if got := ids(agrees(t, p, true, "one", "two", "three")); !slices.Equal(got, w) {
			t.Fatalf("projects %v, want %v", got, w)
		}
	}
	want("one")

	// A link on the way retargeted, as ln -sfn does.
	must(t, os.Symlink("real-b", filepath.Join(tmp, "via.new")))
	must(t, os.Rename(filepath.Join(tmp, "via.new"), filepath.Join(tmp, "via")))
	want("two")

	// An ancestor renamed, another put in its place.
	must(t, os.Rename(filepath.Join(tmp, "real-b"), filepath.Join(tmp, "real-b.old")))
	mustMkdir(t, filepath.Join(tmp, "real-b", "root", "three"), t1)
	want("three")

	// The root renamed away and a new one made.
	must(t, os.Rename(root, filepath.Join(tmp, "root.old")))
	mustMkdir(t, filepath.Join(root, "one"), t1)
	want("one")

	// The root removed: no projects, read from the file system; recreated:
	// seen at once, and watched again.
	must(t, os.RemoveAll(filepath.Join(tmp, "real-b")))
	if got := ids(agrees(t, p, false, "one")); len(got) != 0 {
		t.Fatalf("projects %v in a missing root", got)
	}
	mustMkdir(t, filepath.Join(tmp, "real-b", "root", "two"), t1)
	want("two")
}

// TestProjectsWatch_Paging: many projects are listed in ID order, page by
// page, from memory.
func TestProjectsWatch_Paging(t *testing.T) {
	root := t.TempDir()
	var all []string
	for i := range 300 {
		id := fmt.Sprintf("p-%03d", i)
		all = append(all, id)
		if i%3 == 0 {
			mustWrite(t, filepath.Join(root, id, ".rdev", "labels"), "team=t"+strconv.Itoa(i%2)+"\n")
		} else {
			mustMkdir(t, filepath.Join(root, id), t1)
		}
	}
	p := openWatched(t, root)
	agrees(t, p, true)
	for _, limit := range []int{1, 7, 100, 300} {
		var got []string
		for after := ""; ; {
			ps, err := p.FindProjects(t.Context(), domain.ProjectFilter{AfterID: after, Limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, ids(ps)...)
			if len(ps) < limit {
				break
			}
			after = ps[len(ps)-1].ID
		}
		if !slices.Equal(got, all) {
			t.Fatalf("pages of %d: %v, want %v", limit, got, all)
		}
	}
	// After an ID that is not a project; with a label filter.
	ps, err := p.FindProjects(t.Context(), domain.ProjectFilter{AfterID: "p-0995", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ps); !slices.Equal(got, []string{"p-100", "p-101"}) {
		t.Fatalf("after p-0995: %v", got)
	}
	ps, err = p.FindProjects(t.Context(), domain.ProjectFilter{Labels: map[string]string{"team": "t1"}, Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ps); !slices.Equal(got, []string{"p-003", "p-009", "p-015"}) {
		t.Fatalf("team=t1: %v", got)
	}
	if ok, err := local.Watched(p); !ok {
		t.Fatalf("not watched: %v", err)
	}
}

// TestProjectsWatch_CallersOwnTheirCopies: changing a project returned
// changes nothing another caller sees.
func TestProjectsWatch_CallersOwnTheirCopies(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "web", ".rdev", "labels"), "team=a\n")
	p := openWatched(t, root)
	ps, err := p.FindProjects(t.Context(), domain.ProjectFilter{})
	if err != nil {
		t.Fatal(err)
	}
	ps[0].Labels["team"], ps[0].Annotations["x"], ps[0].Status = "b", "y", domain.ProjectGone
	byID, err := p.FindProjectByID(t.Context(), "web")
	if err != nil {
		t.Fatal(err)
	}
	byID.Labels["tier"] = "prod"
	agrees(t, p, true, "web")
}

// TestProjectsWatch_ConcurrentChurn: readers run while another goroutine
// changes the root, and that goroutine always sees its own change at once.
func TestProjectsWatch_ConcurrentChurn(t *testing.T) {
	root := t.TempDir()
	mustMkdir(t, filepath.Join(root, "stable"), t1)
	p := openWatched(t, root)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				ps, err := p.FindProjects(ctx, domain.ProjectFilter{})
				if err != nil {
					if ctx.Err() == nil {
						t.Error(err)
					}
					return
				}
				if !slices.IsSortedFunc(ps, func(a, b *domain.Project) int { return strings.Compare(a.ID, b.ID) }) ||
					!slices.Contains(ids(ps), "stable") {
					t.Errorf("listing %v", ids(ps))
					return
				}
				if _, err := p.FindProjectByID(ctx, "stable"); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range 200 {
		id := fmt.Sprintf("c-%d", i%7)
		dir := filepath.Join(root, id)
		if _, err := os.Stat(dir); err == nil {
			must(t, os.RemoveAll(dir))
			if _, err := p.FindProjectByID(t.Context(), id); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Fatalf("round %d: %s removed, found: %v", i, id, err)
			}
			continue
		}
		team := strconv.Itoa(i)
		mustWrite(t, filepath.Join(dir, ".rdev", "labels"), "team="+team+"\n")
		pr, err := p.FindProjectByID(t.Context(), id)
		if err != nil || pr.Labels["team"] != team {
			t.Fatalf("round %d: %s created with team=%s: %v, %v", i, id, team, pr, err)
		}
	}
	cancel()
	wg.Wait()
	agrees(t, p, true)
}

// TestProjectsWatch_Overflow: when the kernel's event queue overflows, the
// changes whose events were lost are still seen by the next call.
func TestProjectsWatch_Overflow(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Skipf("SKIPPED: cannot read inotify's queue limit: %v", err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || limit > 1<<17 {
		t.Skipf("SKIPPED: inotify's queue limit %q is too large to fill here (TestWatcher_OverflowInjected covers it)", b)
	}
	root := t.TempDir()
	mustMkdir(t, filepath.Join(root, "busy"), t1)
	p := openWatched(t, root)
	for i := range limit + 10 {
		f, err := os.Create(filepath.Join(root, "busy", "f"+strconv.Itoa(i)))
		must(t, err)
		must(t, f.Close())
	}
	// The queue is full: these events are lost.
	mustWrite(t, filepath.Join(root, "late", ".rdev", "labels"), "team=late\n")
	mustWrite(t, filepath.Join(root, "busy", ".rdev", "labels"), "team=busy\n")
	ps := agrees(t, p, true, "late")
	if got := labelsOf(ps, "late"); got["team"] != "late" {
		t.Fatalf("projects %v: want late with team=late", ids(ps))
	}
	if got := labelsOf(ps, "busy"); got["team"] != "busy" {
		t.Fatalf("busy's labels %v, want team=busy", got)
	}
}

// TestProjects_Close: closed projects still answer, from the file system.
func TestProjects_Close(t *testing.T) {
	root := t.TempDir()
	p := openWatched(t, root)
	must(t, p.Close())
	mustMkdir(t, filepath.Join(root, "later"), time.Now())
	if got := ids(agrees(t, p, false)); !slices.Equal(got, []string{"later"}) {
		t.Fatalf("projects %v after Close, want [later]", got)
	}
	must(t, p.Close())
}

// BenchmarkProjects_Find lists n projects (every fourth with labels) from
// memory and, in the same loop, from the file system as without inotify
// (keeping the root's listing while it is unchanged): "watched-ns/call"
// and "read-ns/call" are their times, "x-read" how many times faster the
// watched listing is.
func BenchmarkProjects_Find(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			root := b.TempDir()
			for i := range n {
				dir := filepath.Join(root, fmt.Sprintf("p-%03d", i))
				if i%4 == 3 {
					mustWrite(b, filepath.Join(dir, ".rdev", "labels"), "team=a\n")
				}
				mustMkdir(b, dir, t1)
			}
			if err := os.Chtimes(root, t1, t1); err != nil {
				b.Fatal(err)
			}
			p := local.NewProjects(root)
			b.Cleanup(func() { _ = p.Close() })
			ctx := b.Context()
			var watched, read time.Duration
			for b.Loop() {
				t0 := time.Now()
				ps, err := p.FindProjects(ctx, domain.ProjectFilter{})
				t1 := time.Now()
				rs, err2 := local.ReadProjects(ctx, p, domain.ProjectFilter{})
				watched, read = watched+t1.Sub(t0), read+time.Since(t1)
				if err != nil || err2 != nil || len(ps) != n || len(rs) != n {
					b.Fatal(len(ps), len(rs), err, err2)
				}
			}
			if ok, err := local.Watched(p); !ok {
				b.Fatalf("not watched: %v", err)
			}
			b.ReportMetric(float64(watched.Nanoseconds())/float64(b.N), "watched-ns/call")
			b.ReportMetric(float64(read.Nanoseconds())/float64(b.N), "read-ns/call")
			b.ReportMetric(float64(read)/float64(watched), "x-read")
		})
	}
}
