package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/rdev-hq/rdev/domain"
)

// Journal is a domain.FinishJournal in a directory: one JSON file per
// command, written to a temporary file, synced and renamed into place, so
// that a record is either whole or absent after a crash.
type Journal struct {
	dir string
}

var _ domain.FinishJournal = (*Journal)(nil)

// NewJournal returns a journal in dir, which it makes if needed.
func NewJournal(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("local: results journal: %w", err)
	}
	return &Journal{dir: dir}, nil
}

// journalSuffix ends every record's name; temporary files end otherwise.
const journalSuffix = ".json"

func (j *Journal) path(id string) (string, error) {
	// IDs are rdev's own, but a name must never leave the directory.
	if id == "" || strings.ContainsAny(id, `/\.`) {
		return "", domain.Errorf(domain.EINVALID, "results journal: bad command ID %q", domain.Clip(id))
	}
	return filepath.Join(j.dir, id+journalSuffix), nil
}

// Keep writes p's record durably.
func (j *Journal) Keep(p domain.PendingFinish) error {
	path, err := j.path(p.Lease.CommandID)
	if err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("local: results journal: %w", err)
	}
	tmp, err := os.CreateTemp(j.dir, "pending-*")
	if err != nil {
		return fmt.Errorf("local: results journal: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("local: results journal: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("local: results journal: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("local: results journal: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("local: results journal: %w", err)
	}
	return syncDir(j.dir)
}

// Drop removes a command's record.
func (j *Journal) Drop(commandID string) error {
	path, err := j.path(commandID)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("local: results journal: %w", err)
	}
	return nil
}

// Pending reads every record. A record that cannot be read is skipped, and
// named in the error returned with the rest.
func (j *Journal) Pending() ([]domain.PendingFinish, error) {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("local: results journal: %w", err)
	}
	var out []domain.PendingFinish
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), journalSuffix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(j.dir, e.Name()))
		var p domain.PendingFinish
		if err == nil {
			err = json.Unmarshal(b, &p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("local: results journal %s: %w", e.Name(), err))
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("local: results journal: %w", err)
	}
	defer func() { _ = d.Close() }()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("local: results journal: %w", err)
	}
	return nil
}
