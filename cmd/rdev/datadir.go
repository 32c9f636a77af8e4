package main

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// dataDirMode is the mode of the data directory: only rdev's user may list
// or enter it. Every file rdev writes in it is 0600.
const dataDirMode fs.FileMode = 0o700

// prepareDataDir creates the data directory with dataDirMode, or tightens
// an existing one that others may read or enter to it. A directory rdev
// cannot change (another user owns it, as with some volume mounts) is used
// as it is, with a warning: the files in it are 0600 all the same.
func (c *storeConfig) prepareDataDir(log *slog.Logger) error {
	if err := os.MkdirAll(c.DataDir, dataDirMode); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	info, err := os.Stat(c.DataDir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if mode := info.Mode().Perm(); mode&^dataDirMode != 0 {
		if err := os.Chmod(c.DataDir, dataDirMode); err != nil {
			log.Warn("the data directory is open to other users and cannot be made private: keep it so only rdev's user can enter it",
				"dir", c.DataDir, "mode", fmt.Sprintf("%#o", mode), "err", err)
			return nil
		}
		log.Info("data directory made private", "dir", c.DataDir, "was", fmt.Sprintf("%#o", mode), "now", fmt.Sprintf("%#o", dataDirMode))
	}
	return nil
}
