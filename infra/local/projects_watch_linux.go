//go:build linux

package local

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rdev-hq/rdev/domain"
)

// watcher keeps the projects in memory and knows, through inotify, when that
// copy may be out of date. Every change that bears on a project is watched:
//
//   - the root, for entries added, removed, renamed or changed (and itself
//     being removed, moved or changed);
//   - every directory looked up on the way to the root, for the name looked
//     up being added, removed, renamed or changed, so that a moved ancestor
//     or a retargeted symbolic link is seen as the root being replaced;
//   - each project directory, for entries added, removed or renamed (its
//     modification time, the project's CreatedAt, follows them), .rdev
//     changing, and itself changing;
//   - each project's .rdev, for the labels file in it changing;
//   - each labels file itself, for writes made through another hard link.
//
// The kernel queues an event before the system call that made the change
// returns, so a request that finds the queue empty (one FIONREAD) may answer
// from the snapshot: it reflects every change made before the request. When
// events are queued, they are read and the projects they name are read
// again from the file system; the root itself changing, or the queue having
// overflowed, reads everything again.
//
// Whenever the copy cannot be trusted — the root is missing or not on a
// local file system (inotify does not see another machine's writes), a
// watch cannot be added (no permission, the user's watch limit) or a read
// fails — the watcher stands down: requests read the file system as on
// other systems, and a new start is tried after rearmDelay. A file system
// mounted over the root or an ancestor while serving is not seen.
type watcher struct {
	p    *Projects
	in   atomic.Pointer[inotify]
	snap atomic.Pointer[snapshot] // trusted while nothing is queued; nil: ask under mu

	mu      sync.Mutex
	armed   bool          // watches and cur stand for the root, up to the queued events
	cur     *snapshot     // the projects as last read, while armed
	retryAt time.Time     // while not armed: no new start before
	delay   time.Duration // from a failed start to the next (rearmDelay)
	failed  error         // why the watcher last stood down
	closed  bool
	watches map[int32]*watched
	held    map[string][]int32 // each project's watches
	rootDev uint64
	buf     []byte
}

// inotify is the watcher's inotify instance. Its descriptor is read under
// the watcher's mutex, and through conn (which keeps it from being closed
// meanwhile) on the fast path.
type inotify struct {
	file *os.File
	conn syscall.RawConn
	fd   int
}

// watched is what one watch descriptor stands for: one inode may be
// watched in several roles (a labels file hard-linked into two projects).
type watched struct {
	root     bool
	lookups  map[string]bool // names looked up in this directory on the way to the root
	projects map[string]role // project ID → the role of this inode in it
}

type role uint8

const (
	roleDir    role = iota // the project directory
	roleRdev               // its .rdev
	roleLabels             // its .rdev/labels
)

const (
	entryEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO
	selfEvents  = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	dirMask     = entryEvents | selfEvents | unix.IN_ATTRIB | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW
	rdevMask    = dirMask | unix.IN_MODIFY | unix.IN_CLOSE_WRITE
	labelsMask  = selfEvents | unix.IN_ATTRIB | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_DONT_FOLLOW
	// inotifyEventSize is the fixed part of an event: wd, mask, cookie, len.
	inotifyEventSize = unix.SizeofInotifyEvent
)

// rearmDelay is how long the watcher stands down after it could not start.
const rearmDelay = time.Second

func newWatcher(p *Projects) *watcher { return &watcher{p: p, delay: rearmDelay} }

// current returns the projects when they can be answered from memory, or
// nil when they must be read from the file system.
func (w *watcher) current() *snapshot {
	// Queue first, snapshot second: whoever reads events clears the
	// snapshot before it reads, so an empty queue seen here means the
	// snapshot loaded after it (if any) was built after every event.
	if in := w.in.Load(); in != nil && in.empty() {
		if s := w.snap.Load(); s != nil {
			return s
		}
	}
	return w.refresh()
}

// empty reports whether no event is queued.
func (in *inotify) empty() bool {
	n, errno := 0, error(nil)
	err := in.conn.Control(func(fd uintptr) {
		// FIONREAD: Linux names it TIOCINQ.
		n, errno = unix.IoctlGetInt(int(fd), unix.TIOCINQ)
	})
	return err == nil && errno == nil && n == 0
}

// refresh reads the queued events and brings the snapshot up to date, or
// starts watching. It returns nil when the watcher stands down.
func (w *watcher) refresh() *snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.snap.Store(nil) // before reading any event; see current
	if !w.armed {
		if time.Now().Before(w.retryAt) {
			return nil
		}
		if err := w.arm(); err != nil {
			w.disarm(err)
			return nil
		}
	} else if err := w.update(); err != nil {
		w.disarm(err)
		return nil
	}
	w.snap.Store(w.cur)
	return w.cur
}

// update applies the queued events to cur.
func (w *watcher) update() error {
	reset, dirty, err := w.drain()
	if err != nil {
		return err
	}
	return w.apply(reset, dirty)
}

// apply brings cur up to date after events: the projects in dirty are read
// again, or everything when reset.
func (w *watcher) apply(reset bool, dirty map[string]bool) error {
	switch {
	case reset:
		return w.arm()
	case len(dirty) == 0:
		return nil
	}
	changed := make(map[string]*domain.Project, len(dirty))
	for id := range dirty {
		p, err := w.load(id)
		if err != nil {
			return err
		}
		changed[id] = p
	}
	w.cur = w.cur.with(changed)
	return nil
}

// arm drops every watch and reads everything again: the root's way, the
// root and each project, each watched before it is read.
func (w *watcher) arm() error {
	in := w.in.Load()
	if in == nil {
		var err error
		if in, err = openInotify(); err != nil {
			return err
		}
		w.in.Store(in)
		w.buf = make([]byte, 64<<10)
	}
	w.dropWatches()
	w.watches, w.held = map[int32]*watched{}, map[string][]int32{}
	// What is queued now is about the state about to be read.
	if _, _, err := w.drain(); err != nil {
		return err
	}
	if err := localFS(w.p.root); err != nil {
		return err
	}
	if err := w.watchRoot(); err != nil {
		return err
	}
	info, err := os.Stat(w.p.root)
	if err != nil {
		return err
	}
	w.rootDev = device(info)
	entries, err := os.ReadDir(w.p.root)
	if err != nil {
		return err
	}
	byID := map[string]*domain.Project{}
	for _, e := range entries {
		if !isProjectEntry(e) {
			continue
		}
		p, err := w.load(e.Name())
		if err != nil {
			return err
		}
		if p != nil {
			byID[p.ID] = p
		}
	}
	w.cur, w.armed = newSnapshot(byID), true
	return nil
}

// disarm stands the watcher down, for err, until rearmDelay has passed.
func (w *watcher) disarm(err error) {
	w.failed = err
	w.dropWatches()
	w.watches, w.held, w.cur, w.armed = nil, nil, nil, false
	w.retryAt = time.Now().Add(w.delay)
}

func (w *watcher) dropWatches() {
	if in := w.in.Load(); in != nil {
		for wd := range w.watches {
			_, _ = unix.InotifyRmWatch(in.fd, uint32(wd)) // #nosec G115 -- a wd is positive
		}
	}
}

func (w *watcher) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed, w.armed, w.cur, w.watches, w.held = true, false, nil, nil, nil
	w.snap.Store(nil)
	if in := w.in.Swap(nil); in != nil {
		_ = in.file.Close()
	}
}

func openInotify() (*inotify, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	conn, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &inotify{file: f, conn: conn, fd: fd}, nil
}

// drain reads every queued event. It returns whether the root must be read
// again as a whole, and the projects whose state may have changed.
func (w *watcher) drain() (reset bool, dirty map[string]bool, err error) {
	in := w.in.Load()
	dirty = map[string]bool{}
	for {
		n, err := unix.Read(in.fd, w.buf)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return reset, dirty, nil
		case err != nil:
			return false, nil, fmt.Errorf("inotify: %w", err)
		case n < inotifyEventSize:
			return reset, dirty, nil
		}
		if w.take(w.buf[:n], dirty) {
			reset = true
		}
	}
}

// take notes the events in b (see note); it returns true when the root
// must be read again as a whole.
func (w *watcher) take(b []byte, dirty map[string]bool) (reset bool) {
	for len(b) >= inotifyEventSize {
		wd := int32(binary.NativeEndian.Uint32(b[0:])) // #nosec G115 -- the kernel's int32
		mask := binary.NativeEndian.Uint32(b[4:])
		size := inotifyEventSize + int(binary.NativeEndian.Uint32(b[12:]))
		if size > len(b) {
			break
		}
		name := strings.TrimRight(string(b[inotifyEventSize:size]), "\x00")
		b = b[size:]
		if w.note(wd, mask, name, dirty) {
			reset = true
		}
	}
	return reset
}

// note takes in one event: it marks the projects it may have changed dirty,
// and returns true when the root must be read again as a whole.
func (w *watcher) note(wd int32, mask uint32, name string, dirty map[string]bool) (reset bool) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		return true // events were lost
	}
	wt := w.watches[wd]
	if wt == nil {
		return false // a watch already let go
	}
	if mask&unix.IN_IGNORED != 0 {
		delete(w.watches, wd) // the kernel let go of it: its inode is gone
	}
	self := name == ""
	if wt.root {
		if self {
			reset = true // the root removed, moved or changed
		} else if domain.ValidateProjectID(name) == nil {
			dirty[name] = true
		}
	}
	if (self && len(wt.lookups) > 0) || wt.lookups[name] {
		reset = true // the way to the root may lead elsewhere
	}
	for id, r := range wt.projects {
		switch {
		case self, r == roleLabels,
			r == roleDir && (mask&entryEvents != 0 || name == filepath.Dir(labelsPath)),
			r == roleRdev && name == filepath.Base(labelsPath):
			dirty[id] = true
		}
	}
	return reset
}

// watchRoot watches the directories on the way to the root, each for the
// name looked up in it, following symbolic links as the kernel does, and
// then the root.
func (w *watcher) watchRoot() error {
	dir, rest := "/", strings.Split(w.p.root, "/")
	for links := 0; len(rest) > 0; {
		name := rest[0]
		rest = rest[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			dir = filepath.Dir(dir)
			continue
		}
		wt, err := w.add(dir, dirMask)
		if err != nil {
			return err
		}
		if wt.lookups == nil {
			wt.lookups = map[string]bool{}
		}
		wt.lookups[name] = true
		next := filepath.Join(dir, name)
		info, err := os.Lstat(next)
		switch {
		case err != nil:
			return err
		case info.Mode()&fs.ModeSymlink != 0:
			if links++; links > 40 {
				return &fs.PathError{Op: "watch", Path: w.p.root, Err: syscall.ELOOP}
			}
			target, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				dir = "/"
			}
			rest = append(strings.Split(target, "/"), rest...)
		case !info.IsDir():
			return &fs.PathError{Op: "watch", Path: w.p.root, Err: syscall.ENOTDIR}
		default:
			dir = next
		}
	}
	wt, err := w.add(dir, dirMask)
	if err != nil {
		return err
	}
	wt.root = true
	return nil
}

// load watches and reads the project id. It returns nil when there is no
// such project.
func (w *watcher) load(id string) (*domain.Project, error) {
	var wds []int32
	defer func() { w.hold(id, wds) }()
	watch := func(path string, mask uint32, r role) (bool, error) {
		wd, err := w.addProject(path, mask, id, r)
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		wds = append(wds, wd)
		return true, nil
	}

	dir := filepath.Join(w.p.root, id)
	// Only a real directory is a project: the watch follows no link.
	if ok, err := watch(dir, dirMask, roleDir); !ok {
		return nil, err
	}
	info, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && !info.IsDir()) {
		return nil, nil // replaced since: an event is queued
	} else if err != nil {
		return nil, fmt.Errorf("local: stat project %s: %w", id, err)
	}
	if device(info) != w.rootDev {
		if err := localFS(dir); err != nil {
			return nil, err
		}
	}
	labels := map[string]string{}
	rdev := filepath.Join(dir, filepath.Dir(labelsPath))
	if ok, err := watch(rdev, rdevMask, roleRdev); err != nil {
		return nil, err
	} else if ok {
		if _, err := watch(filepath.Join(dir, labelsPath), labelsMask, roleLabels); err != nil {
			return nil, err
		}
		if labels, err = w.p.readLabels(id); err != nil {
			return nil, err
		}
	}
	return newProject(id, info, labels), nil
}

// add watches path for mask (adding to what its inode is watched for).
func (w *watcher) add(path string, mask uint32) (*watched, error) {
	wd, err := w.addWatch(path, mask)
	if err != nil {
		return nil, err
	}
	return w.watches[wd], nil
}

func (w *watcher) addProject(path string, mask uint32, id string, r role) (int32, error) {
	wd, err := w.addWatch(path, mask)
	if err != nil {
		return 0, err
	}
	wt := w.watches[wd]
	if wt.projects == nil {
		wt.projects = map[string]role{}
	}
	wt.projects[id] = r
	return wd, nil
}

func (w *watcher) addWatch(path string, mask uint32) (int32, error) {
	wd, err := unix.InotifyAddWatch(w.in.Load().fd, path, mask|unix.IN_MASK_ADD)
	if err != nil {
		return 0, &fs.PathError{Op: "inotify_add_watch", Path: path, Err: err}
	}
	id := int32(wd) // #nosec G115 -- the kernel's int32
	if w.watches[id] == nil {
		w.watches[id] = &watched{}
	}
	return id, nil
}

// hold records the watches project id holds now, and lets go of those it
// held before and no longer does.
func (w *watcher) hold(id string, wds []int32) {
	for _, wd := range w.held[id] {
		if slices.Contains(wds, wd) {
			continue
		}
		if wt := w.watches[wd]; wt != nil {
			delete(wt.projects, id)
			if len(wt.projects) == 0 && len(wt.lookups) == 0 && !wt.root {
				_, _ = unix.InotifyRmWatch(w.in.Load().fd, uint32(wd)) // #nosec G115 -- a wd is positive
				delete(w.watches, wd)
			}
		}
	}
	if len(wds) == 0 {
		delete(w.held, id)
	} else {
		w.held[id] = wds
	}
}

// localFS returns an error unless path is on a file system whose changes
// all pass through this kernel, so that inotify sees them.
func localFS(path string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return &fs.PathError{Op: "statfs", Path: path, Err: err}
	}
	switch uint32(st.Type) { // #nosec G115 -- magic numbers are 32 bits
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.TMPFS_MAGIC,
		unix.RAMFS_MAGIC, unix.OVERLAYFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC, unix.BCACHEFS_SUPER_MAGIC,
		0x2fc12fc1: // ZFS
		return nil
	}
	return fmt.Errorf("local: %s: file system %#x may change behind inotify's back", path, st.Type)
}

// device returns the device of the file info describes.
func device(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Dev
	}
	return 0
}
