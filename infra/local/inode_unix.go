//go:build unix

package local

import (
	"io/fs"
	"syscall"
)

// inode returns the inode number of the file info describes, or 0.
func inode(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Ino) // not a uint64 on every system
	}
	return 0
}
