package domain

import (
	"context"
	"time"
)

// Audit actions of secrets. Their entries name the project and the secret,
// never its value.
const (
	AuditSecretSet    = "secret.set"
	AuditSecretDelete = "secret.delete"
)

// SecretService keeps each project's secrets in a SecretStore, and hands
// their values only to the executor, as a command starts. Setting and
// deleting need secrets:write; listing names needs projects:read (a
// command of the project sees the values anyway, so names tell those who
// may run commands nothing new). A caller reaches only the secrets of the
// projects in its project scope: the others are ENOTFOUND.
type SecretService struct {
	store    SecretStore
	projects ProjectRepository
	audit    *AuditService
	now      func() time.Time
}

// NewSecretService returns a service keeping secrets in store. Changes are
// recorded in audit's log (nil records nothing).
func NewSecretService(store SecretStore, projects ProjectRepository, audit *AuditService) *SecretService {
	return &SecretService{store: store, projects: projects, audit: audit, now: time.Now}
}

// SecretInput is what Set stores: a secret's project, name, value and how
// it reaches commands ("" means SecretAsEnv).
type SecretInput struct {
	ProjectID string
	Name      string
	Value     string
	Delivery  SecretDelivery
}

// Set stores in.Value as the secret in.Name of project in.ProjectID,
// replacing the value and delivery it had, and returns the secret. It
// needs secrets:write; it returns EINVALID for a bad name, value or
// delivery, ENOTFOUND for a project that does not exist or is out of the
// caller's scope, ECONFLICT when the project has MaxProjectSecrets already
// (or as many as its store holds), and EUNAVAILABLE when the store cannot
// keep it (no key, no API server).
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
	now := s.now().UTC().Truncate(time.Microsecond)
	return s.store.PutSecret(ctx, &Secret{
		ProjectID: in.ProjectID, Name: in.Name, Delivery: in.Delivery,
		CreatedBy: caller.KeyID(), CreatedAt: now, UpdatedAt: now,
	}, in.Value, MaxProjectSecrets, entry)
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
		return s.store.DeleteSecret(ctx, projectID, name, entry)
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
	return s.store.FindSecrets(ctx, projectID)
}

// ListOf returns the secrets of each of projectIDs as List does, by
// project, in one read of the store where it can; a project without
// secrets is absent. A project out of the caller's scope, or not a
// project's name, is ENOTFOUND for the whole call.
func (s *SecretService) ListOf(ctx context.Context, projectIDs []string) (map[string][]*Secret, error) {
	caller, err := Authorize(ctx, ScopeProjectsRead)
	if err != nil {
		return nil, err
	}
	for _, id := range projectIDs {
		if ValidateProjectID(id) != nil {
			return nil, projectNotFound(id)
		}
		if err := admitProject(ctx, s.projects, caller, id); err != nil {
			return nil, err
		}
	}
	return s.store.FindSecretsOf(ctx, projectIDs)
}

// Open returns the secrets of project projectID, each as its delivery
// says, for the executor as a command starts; nothing else may call it. It
// returns EUNAVAILABLE while the store cannot give them (no key, no API
// server), and an error naming a secret (never its value) that cannot be
// opened.
func (s *SecretService) Open(ctx context.Context, projectID string) (ExecSecrets, error) {
	secrets, err := s.store.OpenSecrets(ctx, projectID)
	if err != nil {
		return ExecSecrets{}, err
	}
	var out ExecSecrets
	for _, sec := range secrets {
		to := &out.Env
		if sec.Delivery == SecretAsFile {
			to = &out.Files
		}
		if *to == nil {
			*to = make(map[string]string, len(secrets))
		}
		(*to)[sec.Name] = sec.Value
	}
	return out, nil
}
