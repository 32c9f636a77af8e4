//go:build !linux

package local

// watcher would keep the projects in memory; without inotify every request
// reads the file system.
type watcher struct{}

func newWatcher(*Projects) *watcher { return nil }

// current returns nil: the projects are read from the file system.
func (*watcher) current() *snapshot { return nil }

func (*watcher) close() {}
