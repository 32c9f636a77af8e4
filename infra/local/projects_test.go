package local_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/local"
)

// mustMkdir creates dir (and its parents) with an exact modification time.
func mustMkdir(tb testing.TB, dir string, mtime time.Time) {
	tb.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chtimes(dir, mtime, mtime); err != nil {
		tb.Fatal(err)
	}
}

// mustWrite writes a file, creating its directory.
func mustWrite(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func mustSymlink(tb testing.TB, target, link string) {
	tb.Helper()
	if err := os.Symlink(target, link); err != nil {
		tb.Skipf("symbolic links unsupported here: %v", err)
	}
}

var (
	t1 = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	t2 = time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	t3 = time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC)
)

// newTree builds a root with three projects and every kind of entry that
// must not count as one, next to an "outside" directory that a traversal or
// a link would reach:
//
//	tmp/outside/            a directory outside the root
//	tmp/root/alpha/         project, labels team=a tier=dev
//	tmp/root/beta/          project, labels team=b tier=dev
//	tmp/root/gamma-1/       project, no labels file
//	tmp/root/.hidden/       hidden directory
//	tmp/root/Upper/         not a DNS label
//	tmp/root/under_score/   not a DNS label
//	tmp/root/file           regular file
//	tmp/root/link-out  ->   ../outside (symlink to a directory outside)
//	tmp/root/link-in   ->   alpha (symlink to a directory inside)
func newTree(tb testing.TB) (tmp, root string) {
	tb.Helper()
	tmp = tb.TempDir()
	root = filepath.Join(tmp, "root")
	mustMkdir(tb, filepath.Join(tmp, "outside"), t1)
	for _, d := range []string{".hidden", "Upper", "under_score"} {
		mustMkdir(tb, filepath.Join(root, d), t1)
	}
	mustWrite(tb, filepath.Join(root, "file"), "not a project\n")
	mustWrite(tb, filepath.Join(root, "alpha", ".rdev", "labels"), "team=a\ntier=dev\n")
	mustWrite(tb, filepath.Join(root, "beta", ".rdev", "labels"), "# comment\n\nteam = b\r\ntier=dev\r\n")
	mustMkdir(tb, filepath.Join(root, "alpha"), t1)
	mustMkdir(tb, filepath.Join(root, "beta"), t2)
	mustMkdir(tb, filepath.Join(root, "gamma-1"), t3)
	mustSymlink(tb, filepath.Join(tmp, "outside"), filepath.Join(root, "link-out"))
	mustSymlink(tb, "alpha", filepath.Join(root, "link-in"))
	return tmp, root
}

func project(id string, created time.Time, labels map[string]string) *domain.Project {
	return &domain.Project{
		ID:          id,
		Status:      domain.ProjectRunning,
		Labels:      labels,
		Annotations: map[string]string{},
		CreatedAt:   created,
	}
}

var (
	alpha = project("alpha", t1, map[string]string{"team": "a", "tier": "dev"})
	beta  = project("beta", t2, map[string]string{"team": "b", "tier": "dev"})
	gamma = project("gamma-1", t3, map[string]string{})
)

func TestProjects_FindProjectByID(t *testing.T) {
	_, root := newTree(t)
	p := local.NewProjects(root)
	ctx := context.Background()

	t.Run("OK", func(t *testing.T) {
		for _, want := range []*domain.Project{alpha, beta, gamma} {
			got, err := p.FindProjectByID(ctx, want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("FindProjectByID(%q) mismatch (-want +got):\n%s", want.ID, diff)
			}
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		for _, id := range []string{
			"missing",
			"file",          // a regular file
			"link-out",      // a symlink to a directory outside the root
			"link-in",       // a symlink to a directory inside the root
			".hidden",       // hidden, and not a DNS label
			"Upper",         // exists, but is not a DNS label
			"under_score",   // exists, but is not a DNS label
			"",              // the root itself
			".",             // the root itself
			"..",            // the root's parent
			"../outside",    // traversal to a real directory
			"../root/alpha", // traversal back into the root
			"alpha/.rdev",   // a path below a project
			"alpha/",        // trailing slash
			root + "/alpha", // an absolute path
			"/etc",          // an absolute path
			"alpha\x00",     // NUL
			strings.Repeat("a", domain.MaxProjectIDLength+1),
		} {
			_, err := p.FindProjectByID(ctx, id)
			if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
				t.Errorf("FindProjectByID(%q) = %v, want %s", id, err, domain.ENOTFOUND)
			}
			if _, err := p.Dir(id); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Errorf("Dir(%q) = %v, want %s", id, err, domain.ENOTFOUND)
			}
		}
	})

	t.Run("ErrNotFoundMessage", func(t *testing.T) {
		_, err := p.FindProjectByID(ctx, "missing")
		if got, want := domain.ErrorMessage(err), `project "missing" not found`; got != want {
			t.Errorf("message = %q, want %q", got, want)
		}
	})

	t.Run("MissingRoot", func(t *testing.T) {
		p := local.NewProjects(filepath.Join(t.TempDir(), "nope"))
		if _, err := p.FindProjectByID(ctx, "alpha"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("err = %v, want %s", err, domain.ENOTFOUND)
		}
	})

	t.Run("RootIsAFile", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		mustWrite(t, file, "x")
		p := local.NewProjects(file)
		if _, err := p.FindProjectByID(ctx, "alpha"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("err = %v, want %s", err, domain.ENOTFOUND)
		}
	})

	t.Run("ContextCanceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := p.FindProjectByID(ctx, "alpha"); err != context.Canceled {
			t.Errorf("err = %v, want %v", err, context.Canceled)
		}
	})
}

func TestProjects_FindProjects(t *testing.T) {
	_, root := newTree(t)
	p := local.NewProjects(root)

	for _, tt := range []struct {
		name   string
		filter domain.ProjectFilter
		want   []*domain.Project
	}{
		{"All", domain.ProjectFilter{}, []*domain.Project{alpha, beta, gamma}},
		{"StatusRunning", domain.ProjectFilter{Status: domain.ProjectRunning}, []*domain.Project{alpha, beta, gamma}},
		{"StatusPending", domain.ProjectFilter{Status: domain.ProjectPending}, []*domain.Project{}},
		{"Label", domain.ProjectFilter{Labels: map[string]string{"tier": "dev"}}, []*domain.Project{alpha, beta}},
		{"Labels", domain.ProjectFilter{Labels: map[string]string{"tier": "dev", "team": "b"}}, []*domain.Project{beta}},
		{"LabelNoMatch", domain.ProjectFilter{Labels: map[string]string{"team": "z"}}, []*domain.Project{}},
		{"AfterID", domain.ProjectFilter{AfterID: "alpha"}, []*domain.Project{beta, gamma}},
		{"AfterIDBetween", domain.ProjectFilter{AfterID: "b"}, []*domain.Project{beta, gamma}},
		{"AfterIDLast", domain.ProjectFilter{AfterID: "gamma-1"}, []*domain.Project{}},
		{"Limit", domain.ProjectFilter{Limit: 2}, []*domain.Project{alpha, beta}},
		{"LimitAboveCount", domain.ProjectFilter{Limit: 10}, []*domain.Project{alpha, beta, gamma}},
		{"AfterIDAndLimit", domain.ProjectFilter{AfterID: "alpha", Limit: 1}, []*domain.Project{beta}},
		{"LimitCountsMatchesOnly", domain.ProjectFilter{Labels: map[string]string{"tier": "dev"}, AfterID: "alpha", Limit: 1}, []*domain.Project{beta}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.FindProjects(context.Background(), tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("FindProjects(%+v) mismatch (-want +got):\n%s", tt.filter, diff)
			}
		})
	}

	t.Run("MissingRoot", func(t *testing.T) {
		p := local.NewProjects(filepath.Join(t.TempDir(), "nope"))
		got, err := p.FindProjects(context.Background(), domain.ProjectFilter{})
		if err != nil || len(got) != 0 {
			t.Errorf("FindProjects = %v, %v; want no projects and no error", got, err)
		}
	})

	t.Run("RootIsAFile", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		mustWrite(t, file, "x")
		if _, err := local.NewProjects(file).FindProjects(context.Background(), domain.ProjectFilter{}); domain.ErrorCode(err) != domain.EINTERNAL {
			t.Errorf("err = %v, want an internal error", err)
		}
	})

	t.Run("ContextCanceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := p.FindProjects(ctx, domain.ProjectFilter{}); err != context.Canceled {
			t.Errorf("err = %v, want %v", err, context.Canceled)
		}
	})
}

func TestProjects_Labels(t *testing.T) {
	for _, tt := range []struct {
		name    string
		content string
		want    map[string]string
	}{
		{"Empty", "", map[string]string{}},
		{"Simple", "a=1\nb=2", map[string]string{"a": "1", "b": "2"}},
		{"CommentsAndBlanks", "# x=y\n\n   \n\t# z=w\na=1\n", map[string]string{"a": "1"}},
		{"Trimmed", "  a  =  1  \r\n", map[string]string{"a": "1"}},
		{"ValueWithEquals", "url=http://x/?a=b", map[string]string{"url": "http://x/?a=b"}},
		{"EmptyValue", "a=", map[string]string{"a": ""}},
		{"NoEquals", "novalue\na=1", map[string]string{"a": "1"}},
		{"EmptyKey", "=v\n  =v\na=1", map[string]string{"a": "1"}},
		{"KeyWithSpace", "a b=1\na=1", map[string]string{"a": "1"}},
		{"LastWins", "a=1\na=2", map[string]string{"a": "2"}},
		{"DomainKey", "rdev.dev/owner=me", map[string]string{"rdev.dev/owner": "me"}},
		{"ControlCharacters", "a=x\x00y\nb=1\rc=2\nd\x1b=3\nok=é ü", map[string]string{"ok": "é ü"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			mustWrite(t, filepath.Join(root, "p", ".rdev", "labels"), tt.content)
			got, err := local.NewProjects(root).FindProjectByID(context.Background(), "p")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.Labels); diff != "" {
				t.Errorf("labels mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("Oversized", func(t *testing.T) {
		root := t.TempDir()
		var b strings.Builder
		b.WriteString("first=1\n")
		for b.Len() < 70<<10 {
			b.WriteString("filler=" + strings.Repeat("x", 100) + "\n")
		}
		b.WriteString("last=1\n")
		mustWrite(t, filepath.Join(root, "p", ".rdev", "labels"), b.String())
		got, err := local.NewProjects(root).FindProjectByID(context.Background(), "p")
		if err != nil {
			t.Fatal(err)
		}
		if got.Labels["first"] != "1" || got.Labels["filler"] != strings.Repeat("x", 100) {
			t.Errorf("labels from the first 64 KiB lost or cut: %v", got.Labels)
		}
		if _, ok := got.Labels["last"]; ok {
			t.Errorf("labels past 64 KiB read: last=%q", got.Labels["last"])
		}
	})

	// Links are ignored, so a project cannot publish the contents of a file
	// outside itself as labels.
	t.Run("LabelsFileSymlink", func(t *testing.T) {
		tmp := t.TempDir()
		mustWrite(t, filepath.Join(tmp, "secret"), "token=s3cr3t\n")
		mustMkdir(t, filepath.Join(tmp, "root", "p", ".rdev"), t1)
		mustSymlink(t, filepath.Join(tmp, "secret"), filepath.Join(tmp, "root", "p", ".rdev", "labels"))
		got, err := local.NewProjects(filepath.Join(tmp, "root")).FindProjectByID(context.Background(), "p")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Labels) != 0 {
			t.Errorf("labels = %v, want none", got.Labels)
		}
	})

	t.Run("RdevDirSymlink", func(t *testing.T) {
		tmp := t.TempDir()
		mustWrite(t, filepath.Join(tmp, "elsewhere", "labels"), "token=s3cr3t\n")
		mustMkdir(t, filepath.Join(tmp, "root", "p"), t1)
		mustSymlink(t, filepath.Join(tmp, "elsewhere"), filepath.Join(tmp, "root", "p", ".rdev"))
		got, err := local.NewProjects(filepath.Join(tmp, "root")).FindProjectByID(context.Background(), "p")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Labels) != 0 {
			t.Errorf("labels = %v, want none", got.Labels)
		}
	})

	t.Run("LabelsIsADirectory", func(t *testing.T) {
		root := t.TempDir()
		mustMkdir(t, filepath.Join(root, "p", ".rdev", "labels"), t1)
		got, err := local.NewProjects(root).FindProjectByID(context.Background(), "p")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Labels) != 0 {
			t.Errorf("labels = %v, want none", got.Labels)
		}
	})

	t.Run("RdevIsAFile", func(t *testing.T) {
		root := t.TempDir()
		mustWrite(t, filepath.Join(root, "p", ".rdev"), "a=1\n")
		got, err := local.NewProjects(root).FindProjectByID(context.Background(), "p")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Labels) != 0 {
			t.Errorf("labels = %v, want none", got.Labels)
		}
	})
}

func TestProjects_Dir(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		_, root := newTree(t)
		got, err := local.NewProjects(root).Dir("beta")
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, "beta"); got != want {
			t.Errorf("Dir = %q, want %q", got, want)
		}
	})

	t.Run("RelativeRoot", func(t *testing.T) {
		tmp := t.TempDir()
		mustMkdir(t, filepath.Join(tmp, "projects", "p"), t1)
		t.Chdir(tmp)
		p := local.NewProjects("projects")
		got, err := p.Dir("p")
		if err != nil {
			t.Fatal(err)
		}
		if !filepath.IsAbs(got) {
			t.Errorf("Dir = %q, want an absolute path", got)
		}
		// Resolve links in the temporary directory's path (macOS /var).
		want, _ := filepath.EvalSymlinks(filepath.Join(tmp, "projects", "p"))
		if gotReal, _ := filepath.EvalSymlinks(got); gotReal != want {
			t.Errorf("Dir = %q, want %q", got, want)
		}
	})
}

func TestProjects_EnsureRoot(t *testing.T) {
	list := func(t *testing.T, p *local.Projects) []string {
		t.Helper()
		ps, err := p.FindProjects(context.Background(), domain.ProjectFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		return ids
	}

	t.Run("MissingRoot", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "a", "b")
		p := local.NewProjects(root)
		if err := p.EnsureRoot("example"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"example"}, list(t, p)); diff != "" {
			t.Errorf("projects mismatch (-want +got):\n%s", diff)
		}
		readme, err := os.ReadFile(filepath.Join(root, "example", "README.txt"))
		if err != nil || !strings.Contains(string(readme), "rdev") {
			t.Errorf("README.txt = %q, %v", readme, err)
		}
		// A second call changes nothing.
		if err := p.EnsureRoot("other"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"example"}, list(t, p)); diff != "" {
			t.Errorf("projects after second call mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("ExistingProject", func(t *testing.T) {
		root := t.TempDir()
		mustMkdir(t, filepath.Join(root, "mine"), t1)
		p := local.NewProjects(root)
		if err := p.EnsureRoot("example"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"mine"}, list(t, p)); diff != "" {
			t.Errorf("projects mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("OnlyNonProjects", func(t *testing.T) {
		_, root := newTree(t)
		for _, id := range []string{"alpha", "beta", "gamma-1"} {
			if err := os.RemoveAll(filepath.Join(root, id)); err != nil {
				t.Fatal(err)
			}
		}
		p := local.NewProjects(root)
		if err := p.EnsureRoot("example"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"example"}, list(t, p)); diff != "" {
			t.Errorf("projects mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("NoExample", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "r")
		p := local.NewProjects(root)
		if err := p.EnsureRoot(""); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
			t.Fatalf("root not created: %v", err)
		}
		if ids := list(t, p); len(ids) != 0 {
			t.Errorf("projects = %v, want none", ids)
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "r")
		for _, example := range []string{"../escape", "Bad", ".hidden", "a/b"} {
			if err := local.NewProjects(root).EnsureRoot(example); domain.ErrorCode(err) != domain.EINVALID {
				t.Errorf("EnsureRoot(%q) = %v, want %s", example, err, domain.EINVALID)
			}
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(root), "escape")); !os.IsNotExist(err) {
			t.Errorf("traversal created a directory: %v", err)
		}
	})
}

func FuzzProjects_Labels(f *testing.F) {
	for _, s := range []string{"a=1\nb=2", "# c\n\n=x\nk = v\r\n", "a=b=c", "\x00=\x00"} {
		f.Add(s)
	}
	root := f.TempDir()
	path := filepath.Join(root, "p", ".rdev", "labels")
	mustWrite(f, path, "")
	p := local.NewProjects(root)
	f.Fuzz(func(t *testing.T, content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := p.FindProjectByID(context.Background(), "p")
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range got.Labels {
			if k == "" || k != strings.TrimSpace(k) || strings.ContainsAny(k, "= \t\r\n") {
				t.Errorf("bad key %q", k)
			}
			if v != strings.TrimSpace(v) || strings.ContainsFunc(v, unicode.IsControl) {
				t.Errorf("bad value %q for key %q", v, k)
			}
		}
	})
}
