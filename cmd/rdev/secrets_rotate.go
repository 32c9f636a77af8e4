package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/secretbox"
)

// maxRotatePasses bounds the passes of rotate-key: the first rewraps, the
// next ones catch values that servers sealed under an older key while it
// ran, and find none once every server seals under the new key.
const maxRotatePasses = 4

// runSecrets runs `rdev secrets rotate-key`: every secret and webhook
// signing secret, and the key check, sealed again under the first key of
// the new keyring (--new-key-file), or of the current one if the flag is
// absent, in passes until none is left under another key.
func runSecrets(ctx context.Context, args []string, c cli) error {
	if len(args) == 0 || args[0] != "rotate-key" {
		return usageError("secrets needs: rotate-key [--new-key-file FILE]")
	}
	var cfg storeConfig
	var secrets secretsConfig
	var newKeyFile string
	f := newEnvFlags("rdev secrets rotate-key", c.getenv, c.stderr)
	cfg.register(f)
	secrets.register(f)
	f.StringVar(&newKeyFile, "new-key-file", "",
		"file holding the new key (or keys, the first sealing), base64 of 32 bytes; without it, rewrap to the first key of the current keys")
	if err := f.Parse(args[1:]); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return usageError("secrets rotate-key takes no arguments: rotate-key [--new-key-file FILE]")
	}
	current, _, err := secrets.keyring(cfg, false, nil)
	if err != nil {
		return err
	}
	if current == nil {
		return errors.New("no current secrets key: set RDEV_SECRETS_KEY_FILE (or RDEV_SECRETS_KEY) to the keys the secrets are sealed with")
	}
	to, newText := current.Ring(), ""
	if newKeyFile != "" {
		data, err := os.ReadFile(newKeyFile) //nolint:gosec // the operator names the new key file.
		if err != nil {
			return fmt.Errorf("new key file: %w", err)
		}
		next, err := secretbox.ParseRing(string(data))
		if err != nil {
			return fmt.Errorf("%s: %w", newKeyFile, err)
		}
		to, newText = next.With(to), string(data)
	}
	s, _, err := cfg.openMigrated(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()

	dataFile := ""
	if newKeyFile != "" && secrets.usesEmbeddedKeyFile(cfg) {
		// The data directory's key file is rdev's own: it gets the new
		// keys first and the old ones after, so that a running server
		// seals under the new key and opens both while the values move.
		dataFile = secrets.embeddedKeyFile(cfg)
		old, err := os.ReadFile(dataFile) //nolint:gosec // the server's own data directory.
		if err != nil {
			return fmt.Errorf("secrets key file: %w", err)
		}
		if err := replaceKeyFile(dataFile, strings.TrimRight(newText, "\n")+"\n"+string(old)); err != nil {
			return fmt.Errorf("secrets key file: %w", err)
		}
	}
	total, r, err := rotateAll(ctx, domain.NewSealedSecrets(s, to), to)
	if err != nil {
		if dataFile != "" {
			err = fmt.Errorf("%w (%s holds the new keys and the old ones: every value opens; run rotate-key again)", err, dataFile)
		}
		return cliError(err)
	}
	if dataFile != "" {
		// No value is under an old key now: the new keys alone replace them.
		if err := replaceKeyFile(dataFile, newText); err != nil {
			return fmt.Errorf("the secrets are sealed under the new key, but %s still holds the old keys too (%w): copy %s over it", dataFile, err, newKeyFile)
		}
	}
	if err := printRotation(c.stdout, cfg.where(), total, r, to, dataFile, newKeyFile != ""); err != nil {
		return err
	}
	if secrets.Backend == secretsInKubernetes {
		_, err = fmt.Fprintln(c.stdout, "projects' secrets kept in Kubernetes Secrets (RDEV_SECRETS_BACKEND=kubernetes) are not sealed by these keys "+
			"and were not rotated: the cluster's encryption at rest covers them")
	}
	return err
}

// rotateAll runs RotateKey until a pass rewraps nothing, and returns how
// many values it rewrapped in all and the last pass. Values still being
// sealed under an older key after maxRotatePasses mean a server does not
// seal under the new key yet: an error says so.
func rotateAll(ctx context.Context, svc *domain.SealedSecrets, to *secretbox.Ring) (int, domain.KeyRotation, error) {
	total := 0
	for range maxRotatePasses {
		r, err := svc.RotateKey(ctx, to)
		if err != nil {
			return total, r, err
		}
		total += r.Rewrapped
		if r.Rewrapped == 0 {
			return total, r, nil
		}
	}
	return total, domain.KeyRotation{}, fmt.Errorf("%d values sealed again under key %s, and values are still being sealed under older keys: "+
		"a server does not seal under the new key yet (each server's health shows the key it seals under); run rotate-key again once they all do",
		total, to.SealingKeyID())
}

// printRotation tells the operator what rotate-key did and what is left to
// do.
func printRotation(w io.Writer, where string, total int, r domain.KeyRotation, to *secretbox.Ring, dataFile string, newFile bool) error {
	var then string
	older := slices.DeleteFunc(to.KeyIDs(), func(id string) bool { return slices.Contains(r.KeyIDs, id) })
	switch {
	case dataFile != "":
		then = "the new keys replaced " + dataFile
	case newFile:
		then = "every server must hold the new key first now: put it first in RDEV_SECRETS_KEY_FILE (servers read it again when it changes) or RDEV_SECRETS_KEY"
	case len(older) > 0:
		then = "no value is sealed under key " + strings.Join(older, ", ") + " any more: remove it from the key file of every server"
	default:
		then = "no other key is held"
	}
	_, err := fmt.Fprintf(w, "%s: %d secrets sealed again under key %s (webhook signing secrets included; %d stored); key IDs in use: %s; %s\n",
		where, total, to.SealingKeyID(), r.Stored, strings.Join(r.KeyIDs, ", "), then)
	return err
}

// replaceKeyFile writes text to path (mode 0600) through a file beside it
// renamed into place, so that no reader sees it half written.
func replaceKeyFile(path, text string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), embeddedSecretsKeyFile+".*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, werr := tmp.WriteString(text)
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
