package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/secretbox"
)

// secretsConfig is where the key-encryption key of projects' secrets comes
// from; serve and secrets share it.
type secretsConfig struct {
	Key     string
	KeyFile string
}

// embeddedSecretsKeyFile is the key made in RDEV_DATA_DIR for the embedded
// database when none is configured.
const embeddedSecretsKeyFile = "secrets.key"

func (c *secretsConfig) register(f *envFlags) {
	f.String(&c.KeyFile, "secrets-key-file", "RDEV_SECRETS_KEY_FILE", "",
		"file holding the key that encrypts projects' secrets: 32 bytes, base64 (openssl rand -base64 32), e.g. a mounted Kubernetes Secret "+
			"(empty: RDEV_SECRETS_KEY; failing that, with the embedded database, "+embeddedSecretsKeyFile+" in the data directory, made on first start; "+
			"with Postgres, secrets cannot be set)")
	f.Secret(&c.Key, "secrets-key", "RDEV_SECRETS_KEY",
		"the key that encrypts projects' secrets itself, base64 of 32 bytes; instead of RDEV_SECRETS_KEY_FILE")
}

// sealer returns the configured key as a sealer: RDEV_SECRETS_KEY,
// RDEV_SECRETS_KEY_FILE, or with the embedded database the key file in the
// data directory, which create makes if it is missing (made is then its
// path). It returns nil without an error when there is no key.
func (c *secretsConfig) sealer(store storeConfig, create bool) (box *secretbox.Box, made string, err error) {
	var key []byte
	switch {
	case c.Key != "" && c.KeyFile != "":
		return nil, "", errors.New("set RDEV_SECRETS_KEY or RDEV_SECRETS_KEY_FILE, not both")
	case c.Key != "":
		if key, err = secretbox.ParseKey(c.Key); err != nil {
			return nil, "", fmt.Errorf("RDEV_SECRETS_KEY: %w", err)
		}
	case c.KeyFile != "":
		if key, err = secretbox.ReadKeyFile(c.KeyFile); err != nil {
			return nil, "", fmt.Errorf("RDEV_SECRETS_KEY_FILE: %w", err)
		}
	case !store.embedded():
		return nil, "", nil
	case !create:
		if key, err = secretbox.ReadKeyFile(c.embeddedKeyFile(store)); errors.Is(err, os.ErrNotExist) {
			return nil, "", nil
		} else if err != nil {
			return nil, "", err
		}
	default:
		path := c.embeddedKeyFile(store)
		var created bool
		if key, created, err = secretbox.LoadOrCreateKeyFile(path); err != nil {
			return nil, "", err
		}
		if created {
			made = path
		}
	}
	box, err = secretbox.New(key)
	return box, made, err
}

// embeddedKeyFile is the key file in the data directory, used with the
// embedded database when no key is configured.
func (c *secretsConfig) embeddedKeyFile(store storeConfig) string {
	return filepath.Join(store.DataDir, embeddedSecretsKeyFile)
}

// usesEmbeddedKeyFile reports whether the key comes from the data
// directory's key file.
func (c *secretsConfig) usesEmbeddedKeyFile(store storeConfig) bool {
	return c.Key == "" && c.KeyFile == "" && store.embedded()
}

// open returns the secret service over s, having checked that the key is
// the one the stored secrets were sealed with: a wrong key stops the server
// from starting. With a key, s seals webhook endpoints' signing secrets
// too, and those stored in clear before are sealed now; without one (only
// with Postgres) they stay in clear, which it warns of.
func (c *secretsConfig) open(ctx context.Context, s *bunstore.Store, store storeConfig, projects domain.ProjectRepository,
	audit *domain.AuditService, log *slog.Logger) (*domain.SecretService, error) {
	box, made, err := c.sealer(store, true)
	if err != nil {
		return nil, err
	}
	var sealer domain.SecretSealer
	switch {
	case box == nil:
		log.Warn("no secrets key: projects' secrets cannot be set, and webhook signing secrets are stored in the database in clear; " +
			"set RDEV_SECRETS_KEY_FILE (the same key on every replica)")
	case made != "":
		log.Warn("generated a secrets key: keep a copy of it apart from the database; without it the secrets stored cannot be opened", "path", made, "key_id", box.KeyID())
		sealer = box
	default:
		log.Info("projects' secrets are encrypted", "key_id", box.KeyID())
		sealer = box
	}
	secrets := domain.NewSecretService(s, projects, sealer, audit)
	if err := secrets.CheckKey(ctx); err != nil {
		return nil, err
	}
	if sealer != nil {
		s.SealWebhookSecretsWith(sealer)
		n, err := s.SealClearWebhookSecrets(ctx)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			log.Info("sealed the webhook signing secrets stored in clear", "webhooks", n)
		}
	}
	return secrets, nil
}

// runSecrets runs `rdev secrets rotate-key`: every secret, every webhook
// signing secret, and the key check, sealed again under a new key, in one
// transaction.
func runSecrets(ctx context.Context, args []string, c cli) error {
	if len(args) == 0 || args[0] != "rotate-key" {
		return usageError("secrets needs: rotate-key --new-key-file FILE")
	}
	var cfg storeConfig
	var secrets secretsConfig
	var newKeyFile string
	f := newEnvFlags("rdev secrets rotate-key", c.getenv, c.stderr)
	cfg.register(f)
	secrets.register(f)
	f.StringVar(&newKeyFile, "new-key-file", "", "file holding the new key, base64 of 32 bytes (required); start every server with it afterwards")
	if err := f.Parse(args[1:]); err != nil {
		return err
	}
	if newKeyFile == "" || f.NArg() > 0 {
		return usageError("secrets rotate-key needs --new-key-file FILE and no arguments")
	}
	old, _, err := secrets.sealer(cfg, false)
	if err != nil {
		return err
	}
	if old == nil {
		return errors.New("no current secrets key: set RDEV_SECRETS_KEY_FILE (or RDEV_SECRETS_KEY) to the key the secrets are sealed with")
	}
	key, err := secretbox.ReadKeyFile(newKeyFile)
	if err != nil {
		return err
	}
	next, err := secretbox.New(key)
	if err != nil {
		return err
	}
	s, _, err := cfg.openMigrated(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	n, err := domain.NewSecretService(s, nil, old, nil).RotateKey(ctx, next)
	if err != nil {
		return cliError(err)
	}
	then := "start every server with the new key now"
	if secrets.usesEmbeddedKeyFile(cfg) {
		// The data directory's key file is rdev's own: it is replaced, so
		// that the next start uses the new key without being told.
		if err := replaceKeyFile(secrets.embeddedKeyFile(cfg), key); err != nil {
			return fmt.Errorf("the secrets are sealed under the new key, but %s still holds the old one (%w): copy %s over it", secrets.embeddedKeyFile(cfg), err, newKeyFile)
		}
		then = "the new key replaced " + secrets.embeddedKeyFile(cfg)
	}
	_, err = fmt.Fprintf(c.stdout, "%s: %d secrets sealed again under key %s (was %s), webhook signing secrets included; %s\n",
		cfg.where(), n, next.KeyID(), old.KeyID(), then)
	return err
}

// replaceKeyFile writes key to path (mode 0600) through a file beside it
// renamed into place, so that no reader sees it half written.
func replaceKeyFile(path string, key []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), embeddedSecretsKeyFile+".*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, werr := tmp.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err := errors.Join(werr, tmp.Chmod(0o600), tmp.Sync(), tmp.Close()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
