package domain

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Audit actions of secrets. Their entries name the project and the secret,
// never its value.
const (
	AuditSecretSet    = "secret.set"
	AuditSecretDelete = "secret.delete"
)

// SecretService keeps each project's secrets sealed under a key-encryption
// key, and opens them only for the executor, as a command starts. Setting
// and deleting need secrets:write; listing names needs projects:read (a
// command of the project sees the values anyway, so names tell those who
// may run commands nothing new). A caller reaches only the secrets of the
// projects in its project scope: the others are ENOTFOUND.
type SecretService struct {
	repo     SecretRepository
	projects ProjectRepository
	sealer   SecretSealer // nil: no key, secrets cannot be set or opened
	audit    *AuditService
	now      func() time.Time
}

// NewSecretService returns a service over repo sealing with sealer. A nil
// sealer means no key-encryption key is configured: setting a secret is
// then EUNAVAILABLE, and so is starting a command of a project that has
// secrets. Changes are recorded in audit's log (nil records nothing).
func NewSecretService(repo SecretRepository, projects ProjectRepository, sealer SecretSealer, audit *AuditService) *SecretService {
	return &SecretService{repo: repo, projects: projects, sealer: sealer, audit: audit, now: time.Now}
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
func (s *SecretService) CheckKey(ctx context.Context) error {
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

// SecretInput is what Set stores: a secret's project, name, value and how
// it reaches commands ("" means SecretAsEnv).
type SecretInput struct {
	ProjectID string
	Name      string
	Value     string
	Delivery  SecretDelivery
}

// Set seals in.Value as the secret in.Name of project in.ProjectID,
// replacing the value and delivery it had, and returns the secret. It
// needs secrets:write; it returns EINVALID for a bad name, value or
// delivery, ENOTFOUND for a project that does not exist or is out of the
// caller's scope, ECONFLICT when the project has MaxProjectSecrets
// already, and EUNAVAILABLE without a key.
func (s *SecretService) Set(ctx context.Context, in SecretInput) (*Secret, error) {
	entry := s.audit.entry(ctx, AuditSecretSet, Clip(in.ProjectID))
	if entry != nil {
		entry.Details = map[string]string{AuditProjectDetail: Clip(in.ProjectID), "name": Clip(in.Name)}
	}
	sec, err := s.set(ctx, in, entry)
	if err != nil {
		return nil, s.audit.refused(ctx, entry, err)
	}
	return sec, nil
}

func (s *SecretService) set(ctx context.Context, in SecretInput, entry *AuditEntry) (*Secret, error) {
	caller, err := Authorize(ctx, ScopeSecretsWrite)
	if err != nil {
		return nil, err
	}
	if err := ValidateSecretName(in.Name); err != nil {
		return nil, err
	}
	if err := validateSecretValue(in.Value); err != nil {
		return nil, err
	}
	if in.Delivery == "" {
		in.Delivery = SecretAsEnv
	} else if !in.Delivery.Valid() {
		return nil, Errorf(EINVALID, "delivery: %q is neither %s nor %s", Clip(string(in.Delivery)), SecretAsEnv, SecretAsFile)
	}
	if err := s.findProject(ctx, caller, in.ProjectID); err != nil {
		return nil, err
	}
	if s.sealer == nil {
		return nil, errNoSecretsKey()
	}
	sealed, err := s.sealer.Seal([]byte(in.Value), SecretAD(in.ProjectID, in.Name))
	if err != nil {
		return nil, err
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	return s.repo.PutSecret(ctx, &SealedSecret{
		Secret: Secret{
			ProjectID: in.ProjectID, Name: in.Name, Delivery: in.Delivery,
			CreatedBy: caller.KeyID(), CreatedAt: now, UpdatedAt: now,
		},
		Sealed: sealed,
	}, MaxProjectSecrets, entry)
}

// findProject returns nil if project id exists and is in the caller's
// scope, ENOTFOUND otherwise.
func (s *SecretService) findProject(ctx context.Context, caller *Caller, id string) error {
	if ValidateProjectID(id) != nil {
		return projectNotFound(id)
	}
	if err := admitProject(ctx, s.projects, caller, id); err != nil {
		return err
	}
	_, err := s.projects.FindProjectByID(ctx, id)
	return err
}

// Delete removes a secret. It needs secrets:write; it returns ENOTFOUND if
// there is none or its project is out of the caller's scope.
func (s *SecretService) Delete(ctx context.Context, projectID, name string) error {
	entry := s.audit.entry(ctx, AuditSecretDelete, Clip(projectID))
	if entry != nil {
		entry.Details = map[string]string{AuditProjectDetail: Clip(projectID), "name": Clip(name)}
	}
	err := func() error {
		caller, err := Authorize(ctx, ScopeSecretsWrite)
		if err != nil {
			return err
		}
		if ValidateProjectID(projectID) != nil {
			return projectNotFound(projectID)
		}
		if err := admitProject(ctx, s.projects, caller, projectID); err != nil {
			return err
		}
		if ValidateSecretName(name) != nil {
			return secretNotFound(projectID, name)
		}
		return s.repo.DeleteSecret(ctx, projectID, name, entry)
	}()
	if err != nil {
		return s.audit.refused(ctx, entry, err)
	}
	return nil
}

func secretNotFound(projectID, name string) error {
	return Errorf(ENOTFOUND, "project %q has no secret %q", Clip(projectID), Clip(name))
}

// List returns the names and times of a project's secrets, sorted by name;
// never their values. It needs projects:read; ENOTFOUND for a project out
// of the caller's scope.
func (s *SecretService) List(ctx context.Context, projectID string) ([]*Secret, error) {
	caller, err := Authorize(ctx, ScopeProjectsRead)
	if err != nil {
		return nil, err
	}
	if ValidateProjectID(projectID) != nil {
		return nil, projectNotFound(projectID)
	}
	if err := admitProject(ctx, s.projects, caller, projectID); err != nil {
		return nil, err
	}
	return s.repo.FindSecrets(ctx, projectID)
}

// Open returns the opened secrets of project projectID, each as its
// delivery says, for the executor as a command starts; nothing else may
// call it. It returns EUNAVAILABLE if the project has secrets and there is
// no key, and an error naming the secret (never its value) if one does not
// open.
func (s *SecretService) Open(ctx context.Context, projectID string) (ExecSecrets, error) {
	sealed, err := s.repo.FindSealedSecrets(ctx, projectID)
	if err != nil || len(sealed) == 0 {
		return ExecSecrets{}, err
	}
	if s.sealer == nil {
		return ExecSecrets{}, errNoSecretsKey()
	}
	var out ExecSecrets
	for _, sec := range sealed {
		v, err := s.sealer.Open(sec.Sealed, SecretAD(sec.ProjectID, sec.Name))
		if err != nil {
			// Not an outage: waiting would not open it.
			return ExecSecrets{}, Errorf(EINTERNAL, "secret %s of project %s does not open: %v", sec.Name, sec.ProjectID, err)
		}
		to := &out.Env
		if sec.Delivery == SecretAsFile {
			to = &out.Files
		}
		if *to == nil {
			*to = make(map[string]string, len(sealed))
		}
		(*to)[sec.Name] = string(v)
	}
	return out, nil
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
// transaction. The service's sealer opens them: a keyring holding the old
// keys and to's. When to is a SecretKeyNamer, the values already under its
// sealing key are left as they are. Servers must seal under to's key from
// then on. It fails, changing nothing, if a value does not open.
func (s *SecretService) RotateKey(ctx context.Context, to SecretSealer) (KeyRotation, error) {
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
