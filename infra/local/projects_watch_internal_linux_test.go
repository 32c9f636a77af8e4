package local

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rdev-hq/rdev/domain"
)

// TestWatcher_OverflowInjected: events lost to an overflowing queue, of
// which only the overflow event arrives, do not leave the snapshot stale.
// The events are lost here by reading them before the watcher does.
func TestWatcher_OverflowInjected(t *testing.T) {
	root := t.TempDir()
	p := NewProjects(root)
	t.Cleanup(func() { _ = p.Close() })
	list := func() []*domain.Project {
		t.Helper()
		ps, err := p.FindProjects(t.Context(), domain.ProjectFilter{})
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	if ps := list(); len(ps) != 0 || !p.watch.armed {
		t.Fatalf("projects %v, armed %v", ps, p.watch.armed)
	}
	if err := os.Mkdir(filepath.Join(root, "lost"), 0o750); err != nil {
		t.Fatal(err)
	}

	w := p.watch
	w.mu.Lock()
	w.snap.Store(nil) // as refresh does before it reads
	fd := w.in.Load().fd
	lost := 0
	for {
		n, err := unix.Read(fd, w.buf)
		if errors.Is(err, unix.EAGAIN) {
			break
		} else if err != nil {
			w.mu.Unlock()
			t.Fatal(err)
		}
		lost += n
	}
	overflow := make([]byte, unix.SizeofInotifyEvent)
	binary.NativeEndian.PutUint32(overflow[0:], ^uint32(0)) // wd -1
	binary.NativeEndian.PutUint32(overflow[4:], unix.IN_Q_OVERFLOW)
	dirty := map[string]bool{}
	err := w.apply(w.take(overflow, dirty), dirty)
	if err == nil {
		w.snap.Store(w.cur)
	}
	w.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if lost == 0 {
		t.Fatal("no event was queued for the new project")
	}
	if ps := list(); len(ps) != 1 || ps[0].ID != "lost" || !p.watch.armed {
		t.Fatalf("projects %v after the overflow, want [lost] (armed %v)", ps, p.watch.armed)
	}
}
