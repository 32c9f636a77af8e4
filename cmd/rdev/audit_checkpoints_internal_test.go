package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

func TestAuditConfig_Keyring(t *testing.T) {
	embedded := storeConfig{DataDir: filepath.Join(t.TempDir(), "data")}
	t.Run("EmbeddedDefault", func(t *testing.T) {
		var c auditConfig
		if keys, made, err := c.keyring(embedded, false); keys != nil || made != "" || err != nil {
			t.Fatalf("keyring without creating = %v, %q, %v; want none", keys, made, err)
		}
		keys, made, err := c.keyring(embedded, true)
		if err != nil || keys == nil || made != filepath.Join(embedded.DataDir, embeddedAuditKeyFile) {
			t.Fatalf("keyring = %v, %q, %v; want a key made in the data directory", keys, made, err)
		}
		if fi, err := os.Stat(made); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("the key file: %v, %v; want mode 0600", fi, err)
		}
		again, made, err := c.keyring(embedded, true)
		if err != nil || made != "" || again.SigningKeyID() != keys.SigningKeyID() {
			t.Errorf("keyring again = %v, %q, %v; want the same key, not made again", again, made, err)
		}
	})
	t.Run("Env", func(t *testing.T) {
		a, b := domain.NewAuditKeyText(), domain.NewAuditKeyText()
		c := auditConfig{Key: a + ", " + b}
		keys, _, err := c.keyring(storeConfig{DatabaseURL: "postgres://x"}, true)
		if err != nil || len(keys.KeyIDs()) != 2 {
			t.Fatalf("keyring = %v, %v; want two keys", keys, err)
		}
		file := filepath.Join(t.TempDir(), "keys")
		if err := os.WriteFile(file, []byte(a+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		fromFile, _, err := (&auditConfig{KeyFile: file}).keyring(embedded, true)
		if err != nil || fromFile.SigningKeyID() != keys.SigningKeyID() {
			t.Errorf("keyring from a file = %v, %v; want %s signing", fromFile, err, keys.SigningKeyID())
		}
		c.KeyFile = file
		if _, _, err := c.keyring(embedded, true); err == nil || !strings.Contains(err.Error(), "not both") {
			t.Errorf("keyring with both = %v, want an error", err)
		}
		if _, _, err := (&auditConfig{Key: "short"}).keyring(embedded, true); err == nil || !strings.Contains(err.Error(), "RDEV_AUDIT_KEY") {
			t.Errorf("keyring of a bad key = %v, want an error naming RDEV_AUDIT_KEY", err)
		}
	})
	t.Run("PostgresWithoutKey", func(t *testing.T) {
		var c auditConfig
		if keys, made, err := c.keyring(storeConfig{DatabaseURL: "postgres://x", DataDir: t.TempDir()}, true); keys != nil || made != "" || err != nil {
			t.Errorf("keyring = %v, %q, %v; want none: replicas must share a key, so none is made", keys, made, err)
		}
	})
}

// TestCheckpointSinks writes checkpoints to the file and the JSON log, and
// reads both back as `rdev audit verify --checkpoints` does.
func TestCheckpointSinks(t *testing.T) {
	keys, err := domain.ParseAuditKeyring(domain.NewAuditKeyText())
	if err != nil {
		t.Fatal(err)
	}
	cps := []domain.AuditCheckpoint{
		keys.SignCheckpoint(domain.AuditHead{Seq: 3, Hash: "h3"}, time.Now()),
		keys.SignCheckpoint(domain.AuditHead{Seq: 7, Hash: "h7"}, time.Now()),
	}
	file := checkpointFile{filepath.Join(t.TempDir(), "dir", "checkpoints.jsonl")}
	var logged bytes.Buffer
	log := checkpointLog{slog.New(slog.NewJSONHandler(&logged, nil))}
	for _, c := range cps {
		if err := file.WriteAuditCheckpoint(t.Context(), c); err != nil {
			t.Fatal(err)
		}
		if err := log.WriteAuditCheckpoint(t.Context(), c); err != nil {
			t.Fatal(err)
		}
	}
	fromFile, err := readCheckpoints(file.path, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	fromLog, err := domain.ParseAuditCheckpoints(&logged)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(cps)
	for name, got := range map[string][]domain.AuditCheckpoint{"file": fromFile, "log": fromLog} {
		if b, _ := json.Marshal(got); string(b) != string(want) {
			t.Errorf("checkpoints read back from the %s:\n%s\nwant\n%s", name, b, want)
		}
	}
	if cps, err := readCheckpoints("", filepath.Join(t.TempDir(), "none"), nil); cps != nil || err != nil {
		t.Errorf("a configured file not made yet: %v, %v; want none", cps, err)
	}
	if _, err := readCheckpoints(filepath.Join(t.TempDir(), "none"), "", nil); err == nil {
		t.Error("a missing --checkpoints file was accepted")
	}
}
