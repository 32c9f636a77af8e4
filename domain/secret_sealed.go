package domain

import (
	"context"
	"fmt"
	"maps"
	"slices"
)

// SealedSecrets is the SecretStore of rdev's database: each value sealed
// under a key-encryption key held outside the database (SecretSealer),
// bound to its project and name (SecretAD). It also keeps the key check,
// which tells a wrong key at start, and rotates the key.
type SealedSecrets struct {
	repo   SecretRepository
	sealer SecretSealer // nil: no key, secrets cannot be set or opened
}

var _ SecretStore = (*SealedSecrets)(nil)

// NewSealedSecrets returns the store over repo sealing with sealer. A nil
// sealer means no key-encryption key is configured: setting a secret is
// then EUNAVAILABLE, and so is opening the secrets of a project that has
// some.
func NewSealedSecrets(repo SecretRepository, sealer SecretSealer) *SealedSecrets {
	return &SealedSecrets{repo: repo, sealer: sealer}
}

// PutSecret seals value and stores it as secret s, in one transaction with
// audit. It returns EUNAVAILABLE without a key, and ECONFLICT past limit.
func (s *SealedSecrets) PutSecret(ctx context.Context, sec *Secret, value string, limit int, audit *AuditEntry) (*Secret, error) {
	if s.sealer == nil {
		return nil, errNoSecretsKey()
	}
	sealed, err := s.sealer.Seal([]byte(value), SecretAD(sec.ProjectID, sec.Name))
	if err != nil {
		return nil, err
	}
	return s.repo.PutSecret(ctx, &SealedSecret{Secret: *sec, Sealed: sealed}, limit, audit)
}

// DeleteSecret removes a secret, in one transaction with audit; ENOTFOUND
// if there is none.
func (s *SealedSecrets) DeleteSecret(ctx context.Context, projectID, name string, audit *AuditEntry) error {
	return s.repo.DeleteSecret(ctx, projectID, name, audit)
}

// FindSecrets returns a project's secrets sorted by name, without their
// values (which are not even read).
func (s *SealedSecrets) FindSecrets(ctx context.Context, projectID string) ([]*Secret, error) {
	return s.repo.FindSecrets(ctx, projectID)
}

// FindSecretsOf returns the secrets of each of projectIDs, by project, in
// one read.
func (s *SealedSecrets) FindSecretsOf(ctx context.Context, projectIDs []string) (map[string][]*Secret, error) {
	return s.repo.FindSecretsOf(ctx, projectIDs)
}

// OpenSecrets returns a project's secrets with their values opened. It
// returns EUNAVAILABLE if the project has secrets and there is no key, and
// EINTERNAL naming the secret (never its value) if one does not open: not
// an outage, as waiting would not open it.
func (s *SealedSecrets) OpenSecrets(ctx context.Context, projectID string) ([]*SecretValue, error) {
	sealed, err := s.repo.FindSealedSecrets(ctx, projectID)
	if err != nil || len(sealed) == 0 {
		return nil, err
	}
	if s.sealer == nil {
		return nil, errNoSecretsKey()
	}
	out := make([]*SecretValue, len(sealed))
	for i, sec := range sealed {
		v, err := s.sealer.Open(sec.Sealed, SecretAD(sec.ProjectID, sec.Name))
		if err != nil {
			return nil, Errorf(EINTERNAL, "secret %s of project %s does not open: %v", sec.Name, sec.ProjectID, err)
		}
		out[i] = &SecretValue{Secret: sec.Secret, Value: string(v)}
	}
	return out, nil
}

// errNoSecretsKey is returned when secrets are needed and no key is set.
func errNoSecretsKey() error {
	return Errorf(EUNAVAILABLE, "secrets are not available: the server has no secrets key (RDEV_SECRETS_KEY_FILE or RDEV_SECRETS_KEY)")
}

// CheckKey makes sure the key-encryption key is the one the stored secrets
// were sealed with: the first time, it stores a key check sealed with it;
// afterwards it opens that check. It returns an error saying so when the
// key is not the one (or there is no key but secrets were stored), so that
// a server never starts with a key that would open nothing.
func (s *SealedSecrets) CheckKey(ctx context.Context) error {
	if s.sealer == nil {
		_, err := s.repo.SecretKeyCheck(ctx)
		switch ErrorCode(err) {
		case ENOTFOUND:
			return nil
		case "":
			return fmt.Errorf("secrets are stored but no secrets key is configured: set RDEV_SECRETS_KEY_FILE or RDEV_SECRETS_KEY to the key they were sealed with")
		}
		return err
	}
	check, err := s.sealer.Seal(secretKeyCheckValue, secretKeyCheckAD)
	if err != nil {
		return err
	}
	stored, err := s.repo.InitSecretKeyCheck(ctx, check)
	if err != nil {
		return err
	}
	if _, err := s.sealer.Open(stored, secretKeyCheckAD); err != nil {
		return fmt.Errorf("the secrets key is not the one the stored secrets were sealed with (%w): start with that key, or rotate to a new one with rdev secrets rotate-key", err)
	}
	return nil
}

// KeyRotation is what RotateKey did.
type KeyRotation struct {
	// Rewrapped is how many values it sealed again.
	Rewrapped int
	// Stored is how many sealed values there are, the key check left out.
	Stored int
	// KeyIDs are the IDs of the keys the stored values are sealed under
	// now, the key check included, sorted; nil unless the new sealer is a
	// SecretKeyNamer.
	KeyIDs []string
}

// RotateKey seals every stored secret and webhook signing secret, and the
// key check, under to instead of the key it was sealed under, in one
// transaction. The store's sealer opens them: a keyring holding the old
// keys and to's. When to is a SecretKeyNamer, the values already under its
// sealing key are left as they are. Servers must seal under to's key from
// then on. It fails, changing nothing, if a value does not open.
func (s *SealedSecrets) RotateKey(ctx context.Context, to SecretSealer) (KeyRotation, error) {
	var r KeyRotation
	if s.sealer == nil {
		return r, errNoSecretsKey()
	}
	if err := s.CheckKey(ctx); err != nil {
		return r, err
	}
	check, err := to.Seal(secretKeyCheckValue, secretKeyCheckAD)
	if err != nil {
		return r, err
	}
	namer, _ := to.(SecretKeyNamer)
	ids := map[string]bool{}
	r.Stored, err = s.repo.RewrapSecrets(ctx, func(sealed, ad []byte) ([]byte, error) {
		if namer != nil && namer.SealedKeyID(sealed) == namer.SealingKeyID() {
			ids[namer.SealingKeyID()] = true
			return sealed, nil
		}
		v, err := s.sealer.Open(sealed, ad)
		if err != nil {
			return nil, fmt.Errorf("does not open: %w", err)
		}
		out, err := to.Seal(v, ad)
		if err == nil {
			r.Rewrapped++
			if namer != nil {
				ids[namer.SealedKeyID(out)] = true
			}
		}
		return out, err
	}, check)
	if err != nil {
		return KeyRotation{}, err
	}
	if namer != nil {
		ids[namer.SealedKeyID(check)] = true
		r.KeyIDs = slices.Sorted(maps.Keys(ids))
	}
	return r, nil
}
