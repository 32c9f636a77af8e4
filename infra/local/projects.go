// Package local runs rdev on a single machine without Kubernetes: projects are
// directories under one root, and commands run as local processes in them.
package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"github.com/rdev-hq/rdev/domain"
)

// labelsPath is where a project keeps its optional labels, relative to the
// project directory.
var labelsPath = filepath.Join(".rdev", "labels")

// maxLabelsSize caps how much of a labels file is read; labels are a handful
// of short lines, so anything past this is ignored.
const maxLabelsSize = 64 << 10

// Projects is a domain.ProjectRepository over a directory: each subdirectory
// of the root whose name is a valid project ID (a DNS-1123 label) is a
// RUNNING project.
//
// Only real directories count. Symbolic links in the root are ignored, even
// when they point at a directory, so a project always lives under the root
// and a link cannot smuggle an outside directory (where commands would run)
// into the project list. Hidden entries, files and names that are not valid
// project IDs are ignored too.
//
// A project's CreatedAt is its directory's modification time, the closest
// portable stand-in for a creation time. Its labels come from the optional
// file .rdev/labels inside it: "key=value" lines, where blank lines and lines
// starting with '#' are skipped, and so are malformed lines (no '=', an empty
// key, a key with spaces in it, or control characters). The labels file must be a regular file;
// a symbolic link there is ignored.
//
// On Linux, listings and lookups answer from memory while nothing under the
// root has changed, as inotify tells (see watcher); elsewhere, and whenever
// the watch cannot be trusted, they read the file system as described here.
type Projects struct {
	root  string
	watch *watcher

	mu      sync.Mutex
	listing listing // the root's entries when last read
	// unlabelled holds the projects found without .rdev, by the stamp
	// their directory had then: creating .rdev changes its modification
	// time, so while the stamp stands there is still no labels file and the
	// look for one is skipped, as the listing's read is (every listed
	// project is loaded on every listing). A new listing starts it afresh,
	// so it holds no project long gone.
	unlabelled map[string]dirStamp
}

// dirStamp tells a directory's state: its modification time, and its inode
// where the system has one, so that another directory renamed into its
// place with the same time is not taken for it.
type dirStamp struct {
	mtime time.Time
	ino   uint64
}

func stampOf(info fs.FileInfo) dirStamp {
	return dirStamp{mtime: info.ModTime(), ino: inode(info)}
}

// listing is the root's project entries as read at one time. Reading the
// root again is skipped while its modification time is unchanged: adding,
// removing or renaming an entry changes it. Only a listing read well after
// that time is kept, since a change within the same tick of the file
// system's clock would leave the time as it was.
type listing struct {
	mtime   time.Time
	entries []fs.DirEntry
}

// listingMargin is how long after the root's modification time a listing
// must be read to be kept: far more than any file system's clock tick.
const listingMargin = 100 * time.Millisecond

var _ domain.ProjectRepository = (*Projects)(nil)

// NewProjects returns the projects under root. A relative root is made
// absolute against the current directory now, so later changes of directory
// do not move it. The root does not need to exist yet; see EnsureRoot.
func NewProjects(root string) *Projects {
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	p := &Projects{root: filepath.Clean(root)}
	p.watch = newWatcher(p)
	return p
}

// Close stops watching the root, if it was watched. Projects still answer
// after it, from the file system. It returns nil.
func (p *Projects) Close() error {
	p.watch.close()
	return nil
}

// Root returns the absolute directory that holds the projects.
func (p *Projects) Root() string { return p.root }

// FindProjectByID returns the project named id. It returns ENOTFOUND when
// there is no such directory, and also for an id that is not a valid project
// ID, which is rejected before it is used in any path.
func (p *Projects) FindProjectByID(ctx context.Context, id string) (*domain.Project, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s := p.watch.current(); s != nil {
		if pr := s.byID[id]; pr != nil {
			return clone(pr), nil
		}
		return nil, notFound(id)
	}
	info, err := p.stat(id)
	if err != nil {
		return nil, err
	}
	return p.load(id, info)
}

// FindProjects returns the projects that match f, sorted by ID: those whose
// ID sorts after f.AfterID, at most f.Limit of them (0 or less means no
// limit). A missing root directory holds no projects and is not an error;
// other file-system errors are returned wrapped (internal errors).
func (p *Projects) FindProjects(ctx context.Context, f domain.ProjectFilter) ([]*domain.Project, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if s := p.watch.current(); s != nil {
		return s.find(f), nil
	}
	return p.findProjects(ctx, f)
}

// findProjects is FindProjects read from the file system.
func (p *Projects) findProjects(ctx context.Context, f domain.ProjectFilter) ([]*domain.Project, error) {
	entries, err := p.entries()
	if errors.Is(err, fs.ErrNotExist) {
		return []*domain.Project{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("local: list projects in %s: %w", p.root, err)
	}
	out := []*domain.Project{}
	// os.ReadDir sorts by file name, which is the ID order.
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
		id := e.Name()
		if id <= f.AfterID || !isProjectEntry(e) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the listing
		} else if err != nil {
			return nil, fmt.Errorf("local: stat project %s: %w", id, err)
		}
		proj, err := p.load(id, info)
		if err != nil {
			return nil, err
		}
		if f.Matches(proj) {
			out = append(out, proj)
		}
	}
	return out, nil
}

// entries returns the root's entries sorted by name: the kept listing if
// the root has not changed since, else a new one.
func (p *Projects) entries() ([]fs.DirEntry, error) {
	info, err := os.Stat(p.root)
	if err != nil {
		return nil, err
	}
	mtime := info.ModTime()
	p.mu.Lock()
	l := p.listing
	p.mu.Unlock()
	if l.entries != nil && l.mtime.Equal(mtime) {
		return l.entries, nil
	}
	read := time.Now()
	entries, err := os.ReadDir(p.root)
	if err != nil {
		return nil, err
	}
	if read.Sub(mtime) > listingMargin {
		p.mu.Lock()
		p.listing = listing{mtime: mtime, entries: entries}
		p.unlabelled = nil
		p.mu.Unlock()
	}
	return entries, nil
}

// Dir returns the absolute directory of the project named id, where its
// commands run. It returns ENOTFOUND like FindProjectByID.
func (p *Projects) Dir(id string) (string, error) {
	if _, err := p.stat(id); err != nil {
		return "", err
	}
	return filepath.Join(p.root, id), nil
}

// EnsureRoot creates the root directory if it is missing and, when it holds
// no project yet and example is not empty, creates the project example (with
// a README.txt inside) so that a first run has something to list. It returns
// EINVALID if example is not a valid project ID.
func (p *Projects) EnsureRoot(example string) error {
	if example != "" {
		if err := domain.ValidateProjectID(example); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(p.root, 0o750); err != nil {
		return fmt.Errorf("local: create project root: %w", err)
	}
	if example == "" {
		return nil
	}
	entries, err := os.ReadDir(p.root)
	if err != nil {
		return fmt.Errorf("local: list projects in %s: %w", p.root, err)
	}
	for _, e := range entries {
		if isProjectEntry(e) {
			return nil
		}
	}
	dir := filepath.Join(p.root, example)
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("local: create example project: %w", err)
	}
	readme := fmt.Sprintf(`This is %[1]q, an example rdev project.

Every directory directly under %[2]s whose name is a DNS-1123 label
(lower-case letters, digits and '-') is a project, and commands sent to it
run in its directory. Add a directory to add a project.

Optional labels go in .rdev/labels inside a project, one key=value a line:

    team=platform
    tier=dev
`, example, p.root)
	for name, content := range map[string]string{"README.txt": readme, "Makefile": exampleMakefile} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			return fmt.Errorf("local: write example project: %w", err)
		}
	}
	return nil
}

// exampleMakefile gives the example project the task the README runs:
// rdev exec demo -- make test.
const exampleMakefile = `# The example project's tasks: try  rdev exec demo -- make test
.PHONY: test
test:
	@echo "testing the example project"
	@for t in 1 2 3; do sleep 1; echo "test $$t: ok"; done
	@echo PASS
`

// stat returns the directory of the project named id, or ENOTFOUND. The id is
// validated before it touches the file system, so it cannot name anything but
// a direct child of the root.
func (p *Projects) stat(id string) (fs.FileInfo, error) {
	if domain.ValidateProjectID(id) != nil {
		return nil, notFound(id)
	}
	info, err := os.Lstat(filepath.Join(p.root, id))
	switch {
	case errors.Is(err, fs.ErrNotExist), isNotDir(err):
		return nil, notFound(id)
	case err != nil:
		return nil, fmt.Errorf("local: stat project %s: %w", id, err)
	case !info.IsDir():
		// A file or a symbolic link is not a project.
		return nil, notFound(id)
	}
	return info, nil
}

// load builds the project named id from its directory's info.
func (p *Projects) load(id string, info fs.FileInfo) (*domain.Project, error) {
	labels, err := p.labels(id, stampOf(info))
	if err != nil {
		return nil, err
	}
	return newProject(id, info, labels), nil
}

// newProject is the project named id, whose directory has info, with labels.
func newProject(id string, info fs.FileInfo, labels map[string]string) *domain.Project {
	return &domain.Project{
		ID:          id,
		Status:      domain.ProjectRunning,
		Labels:      labels,
		Annotations: map[string]string{},
		CreatedAt:   info.ModTime().UTC(),
	}
}

// labels returns the labels of the project named id, whose directory has
// the stamp st.
func (p *Projects) labels(id string, st dirStamp) (map[string]string, error) {
	p.mu.Lock()
	known, ok := p.unlabelled[id]
	p.mu.Unlock()
	if ok && known.ino == st.ino && known.mtime.Equal(st.mtime) {
		return map[string]string{}, nil
	}
	// Most projects have no .rdev: one lstat tells, before opening anything.
	read := time.Now()
	if _, err := os.Lstat(filepath.Join(p.root, id, filepath.Dir(labelsPath))); errors.Is(err, fs.ErrNotExist) {
		// Kept only when read well after the time, as a listing is.
		if read.Sub(st.mtime) > listingMargin {
			p.mu.Lock()
			if p.unlabelled == nil {
				p.unlabelled = map[string]dirStamp{}
			}
			p.unlabelled[id] = st
			p.mu.Unlock()
		}
		return map[string]string{}, nil
	}
	return p.readLabels(id)
}

// readLabels reads the project's labels file, if it has one. Reads go through
// an os.Root at the project directory, so the file cannot resolve to anything
// outside it.
func (p *Projects) readLabels(id string) (map[string]string, error) {
	root, err := os.OpenRoot(filepath.Join(p.root, id))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("local: open project %s: %w", id, err)
	}
	defer root.Close()

	// Both .rdev and the file in it must be what they claim, not symbolic
	// links: a link is ignored, like one in the project root.
	for _, c := range []struct {
		name string
		ok   func(fs.FileMode) bool
	}{
		{filepath.Dir(labelsPath), fs.FileMode.IsDir},
		{labelsPath, fs.FileMode.IsRegular},
	} {
		info, err := root.Lstat(c.name)
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) || (err == nil && !c.ok(info.Mode())) {
			return map[string]string{}, nil
		} else if err != nil {
			return nil, fmt.Errorf("local: project %s labels: %w", id, err)
		}
	}
	f, err := root.Open(labelsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	} else if err != nil {
		return nil, fmt.Errorf("local: project %s labels: %w", id, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxLabelsSize+1))
	if err != nil {
		return nil, fmt.Errorf("local: project %s labels: %w", id, err)
	}
	if len(b) > maxLabelsSize {
		// Keep whole lines only, so a cut does not shorten a value.
		b = b[:max(0, bytes.LastIndexByte(b[:maxLabelsSize], '\n'))]
	}
	return parseLabels(string(b)), nil
}

// parseLabels parses "key=value" lines. Keys and values are trimmed of
// surrounding spaces; the value is everything after the first '='. Blank
// lines, '#' comments and malformed lines (no '=', an empty key, a key with
// spaces, control characters anywhere) are skipped; a later line wins over an
// earlier one with the same key.
func parseLabels(s string) map[string]string {
	labels := map[string]string{}
	for line := range strings.Lines(s) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		if !ok || k == "" || strings.ContainsFunc(k, unicode.IsSpace) ||
			strings.ContainsFunc(k, unicode.IsControl) || strings.ContainsFunc(v, unicode.IsControl) {
			continue
		}
		labels[k] = v
	}
	return labels
}

// isProjectEntry reports whether a root entry is a project: a real directory
// (not a symbolic link) whose name is a valid project ID.
func isProjectEntry(e fs.DirEntry) bool {
	return e.Type().IsDir() && domain.ValidateProjectID(e.Name()) == nil
}

// isNotDir reports whether err says a path component is not a directory, as
// when the root itself is a file.
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR)
}

func notFound(id string) error {
	if len(id) > 80 {
		id = id[:80] + "…"
	}
	return domain.Errorf(domain.ENOTFOUND, "project %q not found", id)
}
