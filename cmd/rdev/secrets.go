package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/kube"
	"github.com/rdev-hq/rdev/infra/secretbox"
)

// secretsConfig is where the key-encryption key of projects' secrets comes
// from; serve and secrets share it.
type secretsConfig struct {
	Key     string
	KeyFile string
	Backend string
}

// The values of RDEV_SECRETS_BACKEND.
const (
	secretsInDatabase   = "database"
	secretsInKubernetes = "kubernetes"
)

// embeddedSecretsKeyFile is the key made in RDEV_DATA_DIR for the embedded
// database when none is configured.
const embeddedSecretsKeyFile = "secrets.key"

func (c *secretsConfig) register(f *envFlags) {
	f.String(&c.KeyFile, "secrets-key-file", "RDEV_SECRETS_KEY_FILE", "",
		"file holding the keys that encrypt projects' secrets, one a line, each 32 bytes base64 (openssl rand -base64 32), e.g. a mounted Kubernetes Secret: "+
			"the first seals, every one opens, and a running server reads the file again when it changes (key rotation: docs/operations.md) "+
			"(empty: RDEV_SECRETS_KEY; failing that, with the embedded database, "+embeddedSecretsKeyFile+" in the data directory, made on first start; "+
			"with Postgres, secrets cannot be set)")
	f.Secret(&c.Key, "secrets-key", "RDEV_SECRETS_KEY",
		"the keys that encrypt projects' secrets themselves, one a line, each base64 of 32 bytes, the first sealing; instead of RDEV_SECRETS_KEY_FILE")
	f.String(&c.Backend, "secrets-backend", "RDEV_SECRETS_BACKEND", secretsInDatabase,
		"where projects' secrets are kept: database (encrypted in rdev's database under the secrets key) or kubernetes "+
			"(a Secret "+kube.SecretNamePrefix+"<project> in each project pod's namespace, protected as the cluster protects Secrets; only with the kube executor). "+
			"Webhook signing secrets stay encrypted in the database either way")
}

// backend validates RDEV_SECRETS_BACKEND against the executor: the
// kubernetes backend needs the kube executor, whose cluster holds the
// Secrets.
func (c *secretsConfig) backend(executor string) (string, error) {
	switch c.Backend {
	case secretsInDatabase, "":
		return secretsInDatabase, nil
	case secretsInKubernetes:
		if executor != "kube" {
			return "", fmt.Errorf("RDEV_SECRETS_BACKEND=kubernetes keeps projects' secrets in Kubernetes Secrets beside their pods: it needs RDEV_EXECUTOR=kube, not %s", executor)
		}
		return secretsInKubernetes, nil
	}
	return "", fmt.Errorf("RDEV_SECRETS_BACKEND: %q is not database or kubernetes", c.Backend)
}

// keyring is the key-encryption keys a process holds: fixed (a
// *secretbox.Ring from RDEV_SECRETS_KEY) or read again as its file
// changes (a *secretbox.KeyFile).
type keyring interface {
	domain.SecretSealer
	domain.SecretKeyNamer
	// Ring returns the keys held now.
	Ring() *secretbox.Ring
	// Status reports the keys held, by ID, for health and metrics.
	Status() secretbox.KeyStatus
}

// keyring returns the configured keys: RDEV_SECRETS_KEY,
// RDEV_SECRETS_KEY_FILE, or with the embedded database the key file in the
// data directory, which create makes if it is missing (made is then its
// path). Key files are read again when they change, logging to log. It
// returns nil without an error when there is no key.
func (c *secretsConfig) keyring(store storeConfig, create bool, log *slog.Logger) (ring keyring, made string, err error) {
	path := c.KeyFile
	switch {
	case c.Key != "" && c.KeyFile != "":
		return nil, "", errors.New("set RDEV_SECRETS_KEY or RDEV_SECRETS_KEY_FILE, not both")
	case c.Key != "":
		r, err := secretbox.ParseRing(c.Key)
		if err != nil {
			return nil, "", fmt.Errorf("RDEV_SECRETS_KEY: %w", err)
		}
		return r, "", nil
	case c.KeyFile != "":
	case !store.embedded():
		return nil, "", nil
	default:
		path = c.embeddedKeyFile(store)
		if !create {
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				return nil, "", nil
			}
			break
		}
		created, err := secretbox.CreateKeyFile(path)
		if err != nil {
			return nil, "", err
		}
		if created {
			made = path
		}
	}
	kf, err := secretbox.OpenKeyFile(path, log)
	if err != nil && c.KeyFile != "" {
		return nil, "", fmt.Errorf("RDEV_SECRETS_KEY_FILE: %w", err)
	}
	if err != nil {
		return nil, "", err
	}
	return kf, made, nil
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

// open returns the secret service and the keys it holds (nil if none),
// keeping projects' secrets in the database (s) or, with the kubernetes
// backend, in kubeStore. Either way it checks that the keys open the
// database's sealed values: a wrong key stops the server from starting.
// With a key, s seals webhook endpoints' signing secrets too, and those
// stored in clear before are sealed now; without one (only with Postgres)
// they stay in clear, which it warns of.
func (c *secretsConfig) open(ctx context.Context, s *bunstore.Store, store storeConfig, projects domain.ProjectRepository,
	audit *domain.AuditService, kubeStore domain.SecretStore, log *slog.Logger) (*domain.SecretService, keyring, error) {
	ring, made, err := c.keyring(store, true, log)
	if err != nil {
		return nil, nil, err
	}
	var sealer domain.SecretSealer
	switch {
	case ring == nil && kubeStore != nil:
		log.Warn("no secrets key: webhook signing secrets are stored in the database in clear; set RDEV_SECRETS_KEY_FILE (the same key on every replica)")
	case ring == nil:
		log.Warn("no secrets key: projects' secrets cannot be set, and webhook signing secrets are stored in the database in clear; " +
			"set RDEV_SECRETS_KEY_FILE (the same key on every replica)")
	case made != "":
		log.Warn("generated a secrets key: keep a copy of it apart from the database; without it the secrets stored cannot be opened", "path", made, "key_id", ring.SealingKeyID())
		sealer = ring
	default:
		log.Info("secrets in the database are encrypted", "key_id", ring.SealingKeyID(), "key_ids", ring.Ring().KeyIDs())
		sealer = ring
	}
	sealed := domain.NewSealedSecrets(s, sealer)
	if err := sealed.CheckKey(ctx); err != nil {
		return nil, nil, err
	}
	if sealer != nil {
		s.SealWebhookSecretsWith(sealer)
		n, err := s.SealClearWebhookSecrets(ctx)
		if err != nil {
			return nil, nil, err
		}
		if n > 0 {
			log.Info("sealed the webhook signing secrets stored in clear", "webhooks", n)
		}
	}
	if kubeStore != nil {
		log.Info("projects' secrets are kept in Kubernetes Secrets, one per project in its pod's namespace", "name", kube.SecretNamePrefix+"<project>")
		return domain.NewSecretService(kubeStore, projects, audit), ring, nil
	}
	return domain.NewSecretService(sealed, projects, audit), ring, nil
}

// keysHealth reports "secrets key": how many keys ring holds and which
// seals, by ID (never a key, nor where the file is), so that an operator
// can tell every replica holds a new ring before rotating to it. It is
// DEGRADED while the key file, changed, is not taken.
func keysHealth(ring keyring) domain.HealthCheckFunc {
	return func(context.Context) domain.ComponentHealth {
		h := domain.ComponentHealth{Name: "secrets key", Status: domain.ComponentOK}
		if ring == nil {
			h.Detail = "none: secrets cannot be set"
			return h
		}
		st := ring.Status()
		h.Detail = fmt.Sprintf("keys: %d (%s), sealing under %s", len(st.KeyIDs), strings.Join(st.KeyIDs, ", "), st.KeyIDs[0])
		if st.Stale != "" {
			h.Status, h.Since = domain.ComponentDegraded, st.StaleSince
			h.Detail += "; the key file changed and is not taken (" + st.Stale + ")"
		}
		return h
	}
}

// keyIDs returns the IDs of the keys ring holds, the sealing one first,
// and whether its file is stale, for rdev_secrets_keys.
func keyIDs(ring keyring) func() ([]string, bool) {
	return func() ([]string, bool) {
		if ring == nil {
			return nil, false
		}
		st := ring.Status()
		return st.KeyIDs, st.Stale != ""
	}
}
