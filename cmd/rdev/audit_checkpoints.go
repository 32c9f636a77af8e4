package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
)

// checkpointFile appends checkpoints to a file, one JSON line each, synced
// before the write counts as done.
type checkpointFile struct{ path string }

// WriteAuditCheckpoint appends c to the file, creating it (and its
// directory) if needed.
func (f checkpointFile) WriteAuditCheckpoint(_ context.Context, c domain.AuditCheckpoint) error {
	line, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("audit checkpoint: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("audit checkpoint file: %w", err)
	}
	file, err := os.OpenFile(f.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600) //nolint:gosec // the operator's own checkpoint file
	if err != nil {
		return fmt.Errorf("audit checkpoint file: %w", err)
	}
	_, err = file.Write(append(line, '\n'))
	if err = errors.Join(err, file.Sync(), file.Close()); err != nil {
		return fmt.Errorf("audit checkpoint file %s: %w", f.path, err)
	}
	return nil
}

// checkpointLog logs checkpoints at info level, so they leave the machine
// with the log; `rdev audit verify --checkpoints` reads those log lines.
type checkpointLog struct{ log *slog.Logger }

// WriteAuditCheckpoint logs c.
func (l checkpointLog) WriteAuditCheckpoint(ctx context.Context, c domain.AuditCheckpoint) error {
	l.log.InfoContext(ctx, "audit checkpoint", "checkpoint", c)
	return nil
}

// open makes s MAC its audit entries with the configured keys and returns
// the checkpointer of its chain's head, or nil without keys, saying so in
// the log.
func (c *auditConfig) open(s *bunstore.Store, store storeConfig, log *slog.Logger) (*domain.AuditCheckpointer, error) {
	if c.CheckpointInterval <= 0 {
		return nil, fmt.Errorf("RDEV_AUDIT_CHECKPOINT_INTERVAL: %s is not positive", c.CheckpointInterval)
	}
	keys, made, err := c.keyring(store, true)
	if err != nil {
		return nil, err
	}
	if made != "" {
		log.Warn("generated an audit key: keep a copy of it apart from the database, to verify the audit log with", "path", made)
	}
	if keys == nil {
		log.Warn("no audit key: audit entries are unkeyed and no checkpoints are made, so a rewritten audit log can verify; " +
			"set RDEV_AUDIT_KEY_FILE (the same keys on every replica)")
		return nil, nil
	}
	s.SignAuditWith(keys)
	sinks := []domain.AuditCheckpointSink{checkpointLog{log}}
	path := c.checkpointsPath(store)
	if path != "" {
		sinks = append(sinks, checkpointFile{path})
	}
	log.Info("audit entries are MACed", "key_id", keys.SigningKeyID(), "keys", len(keys.KeyIDs()), "checkpoints", path)
	return domain.NewAuditCheckpointer(s, keys, sinks...), nil
}

// checkpointAudit checkpoints the audit chain's head if there is a
// checkpointer and the head moved.
func (s *server) checkpointAudit(ctx context.Context) error {
	if s.checkpoint == nil {
		return nil
	}
	_, _, err := s.checkpoint.Checkpoint(ctx)
	return err
}
