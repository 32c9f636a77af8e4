package domain

import (
	"context"
	"regexp"
	"strings"
	"time"
)

// Limits of project secrets.
const (
	// MaxSecretNameBytes bounds a secret's name.
	MaxSecretNameBytes = 128
	// MaxSecretValueBytes bounds a secret's value.
	MaxSecretValueBytes = 32 << 10
	// MaxProjectSecrets bounds how many secrets one project has.
	MaxProjectSecrets = 100
)

// secretNamePattern is an environment variable name in upper case, as
// POSIX utilities use them.
var secretNamePattern = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// reservedSecretNames are variables a command's environment needs as the
// executor sets them: a secret cannot replace them.
var reservedSecretNames = []string{"HOME", "PATH", "PWD", "SHELL", "USER", "LOGNAME", "TERM", "TMPDIR"}

// SecretDelivery says how a secret reaches a project's commands.
type SecretDelivery string

// The ways a secret reaches a command.
const (
	// SecretAsEnv gives it as an environment variable of its name.
	SecretAsEnv SecretDelivery = "ENV"
	// SecretAsFile gives it as a file of its name in a directory of the
	// command's own, named by $RDEV_SECRETS_DIR (SecretsDirVar), readable
	// only by the command's user and removed when the command ends; it is
	// not in the command's environment, so the processes it starts do not
	// inherit it and /proc/PID/environ does not show it.
	SecretAsFile SecretDelivery = "FILE"
)

// SecretsDirVar names the variable that tells a command where its file
// secrets are; it is set only for commands that have some.
const SecretsDirVar = "RDEV_SECRETS_DIR" //nolint:gosec // the name of a variable, not a credential.

// Valid reports whether d is a known delivery.
func (d SecretDelivery) Valid() bool { return d == SecretAsEnv || d == SecretAsFile }

// Secret is a named value of a project, given to each of its commands as an
// environment variable or a file (Delivery). Only its name, delivery and
// times are ever shown: the value is write-only, and kept sealed
// (SecretSealer).
type Secret struct {
	ProjectID string
	Name      string
	Delivery  SecretDelivery
	// CreatedBy is the key that first set it, "" for the operator.
	CreatedBy string
	CreatedAt time.Time
	// UpdatedAt is when the value was last set.
	UpdatedAt time.Time
}

// SealedSecret is a secret with its sealed value, as stored.
type SealedSecret struct {
	Secret
	// Sealed is the value as SecretSealer.Seal returned it, bound to the
	// secret's project and name (SecretAD).
	Sealed []byte
}

// SecretAD returns the associated data a secret's value is sealed with: its
// project and name, so that a sealed value copied to another project or
// name does not open.
func SecretAD(projectID, name string) []byte {
	return []byte("rdev secret\x00" + projectID + "\x00" + name)
}

// WebhookSecretAD returns the associated data a webhook endpoint's signing
// secrets are sealed with: its ID, so that a sealed secret copied to another
// endpoint does not open.
func WebhookSecretAD(webhookID string) []byte {
	return []byte("rdev webhook secret\x00" + webhookID)
}

// secretKeyCheckAD and secretKeyCheckValue make the key check: a known value
// sealed under the key-encryption key, so that a wrong key is told at start
// rather than found out when a command needs a secret.
var (
	secretKeyCheckAD    = []byte("rdev secrets key check")
	secretKeyCheckValue = []byte("rdev secrets key check value v1")
)

// ValidateSecretName returns EINVALID unless name can name a secret: an
// environment variable name in upper case ([A-Z_][A-Z0-9_]*), not starting
// with RDEV_ or _RDEV_ (rdev's own), and none of the variables the executor
// sets (HOME, PATH, …) nor a dynamic linker variable (LD_*).
func ValidateSecretName(name string) error {
	switch {
	case len(name) > MaxSecretNameBytes || !secretNamePattern.MatchString(name):
		return Errorf(EINVALID, "name: %q is not a secret name: upper-case letters, digits and _, not starting with a digit, at most %d bytes", Clip(name), MaxSecretNameBytes)
	case strings.HasPrefix(name, "RDEV_") || strings.HasPrefix(name, "_RDEV_"):
		return Errorf(EINVALID, "name: %q: names starting with RDEV_ or _RDEV_ are reserved", name)
	case strings.HasPrefix(name, "LD_"):
		return Errorf(EINVALID, "name: %q: dynamic linker variables (LD_*) cannot be secrets", name)
	}
	for _, r := range reservedSecretNames {
		if name == r {
			return Errorf(EINVALID, "name: %q is set by the executor and cannot be a secret", name)
		}
	}
	return nil
}

// validateSecretValue returns EINVALID for a value that cannot be an
// environment variable's, or is too long.
func validateSecretValue(value string) error {
	switch {
	case len(value) > MaxSecretValueBytes:
		return Errorf(EINVALID, "value: %d bytes, at most %d", len(value), MaxSecretValueBytes)
	case strings.IndexByte(value, 0) >= 0:
		return Errorf(EINVALID, "value: holds a NUL byte, which an environment variable cannot")
	}
	return nil
}

// ExecSecrets are a project's secrets opened for one command, as the
// executor gives them: Env as environment variables, Files as files of
// those names in a directory of the command's own (SecretAsFile). They
// live only in memory, for the executor.
type ExecSecrets struct {
	Env   map[string]string
	Files map[string]string
}

// SecretSealer seals values with an authenticated cipher under a
// key-encryption key held outside the database (infra/secretbox).
type SecretSealer interface {
	// Seal encrypts plaintext bound to ad.
	Seal(plaintext, ad []byte) ([]byte, error)
	// Open returns the plaintext of sealed. It fails, never returning
	// garbage, if sealed was changed, sealed with other ad, or under
	// another key; the error then says which key sealed it.
	Open(sealed, ad []byte) ([]byte, error)
}

// SecretKeyNamer is a SecretSealer whose sealed values name the key that
// sealed them (infra/secretbox, a keyring that seals under its first key
// and opens under any): RotateKey then leaves the values already under the
// sealing key as they are and reports which keys the stored values are
// under.
type SecretKeyNamer interface {
	// SealingKeyID returns the ID of the key Seal seals under.
	SealingKeyID() string
	// SealedKeyID returns the ID of the key sealed was sealed under, ""
	// if it names none.
	SealedKeyID(sealed []byte) string
}

// SecretValue is a secret with its value in clear, as a SecretStore opens
// it for the executor as a command starts.
type SecretValue struct {
	Secret
	Value string
}

// SecretStore keeps projects' secrets: their values where only the
// executor reads them, and their names and times for anyone allowed to
// list them. Two adapters hold them: SealedSecrets (sealed in rdev's
// database) and infra/kube's store (a Kubernetes Secret per project).
type SecretStore interface {
	// PutSecret sets the value and delivery of secret s (its project and
	// name), replacing those it had (keeping its CreatedAt and CreatedBy),
	// and appends audit unless it is nil: in the change's own transaction
	// where the store has them, otherwise right after the change (an error
	// then says the change was made). It returns the secret as stored,
	// ECONFLICT if the project would have more than limit secrets, or
	// more than the store holds, and EUNAVAILABLE if the store cannot be
	// reached or cannot keep values.
	PutSecret(ctx context.Context, s *Secret, value string, limit int, audit *AuditEntry) (*Secret, error)
	// DeleteSecret removes a secret and appends audit unless it is nil, as
	// PutSecret does. It returns ENOTFOUND if there is none.
	DeleteSecret(ctx context.Context, projectID, name string, audit *AuditEntry) error
	// FindSecrets returns a project's secrets sorted by name, without
	// their values.
	FindSecrets(ctx context.Context, projectID string) ([]*Secret, error)
	// FindSecretsOf returns the secrets of each of projectIDs, as
	// FindSecrets does, by project; a project without secrets is absent.
	FindSecretsOf(ctx context.Context, projectIDs []string) (map[string][]*Secret, error)
	// OpenSecrets returns a project's secrets sorted by name, with their
	// values, for the executor only. An error names a secret, never shows
	// a value.
	OpenSecrets(ctx context.Context, projectID string) ([]*SecretValue, error)
}

// SecretRepository stores sealed secrets and the key check.
type SecretRepository interface {
	// PutSecret inserts s, or replaces the sealed value and UpdatedAt of the
	// secret of that project and name (keeping its CreatedAt and
	// CreatedBy), and appends audit unless it is nil, in one transaction.
	// It returns the secret as stored, and ECONFLICT if the insert would
	// give the project more than limit secrets.
	PutSecret(ctx context.Context, s *SealedSecret, limit int, audit *AuditEntry) (*Secret, error)
	// DeleteSecret removes a secret and appends audit unless it is nil, in
	// one transaction. It returns ENOTFOUND if there is none.
	DeleteSecret(ctx context.Context, projectID, name string, audit *AuditEntry) error
	// FindSecrets returns a project's secrets sorted by name, without
	// their values.
	FindSecrets(ctx context.Context, projectID string) ([]*Secret, error)
	// FindSecretsOf returns the secrets of each of projectIDs, sorted by
	// name and without their values, by project, in one query; a project
	// without secrets is absent.
	FindSecretsOf(ctx context.Context, projectIDs []string) (map[string][]*Secret, error)
	// FindSealedSecrets returns a project's secrets sorted by name, with
	// their sealed values.
	FindSealedSecrets(ctx context.Context, projectID string) ([]*SealedSecret, error)
	// SecretKeyCheck returns the stored key check, ENOTFOUND if there is
	// none yet.
	SecretKeyCheck(ctx context.Context) ([]byte, error)
	// InitSecretKeyCheck stores check unless one is stored already, and
	// returns the one stored.
	InitSecretKeyCheck(ctx context.Context, check []byte) ([]byte, error)
	// RewrapSecrets calls rewrap on every sealed value stored (projects'
	// secrets, bound to SecretAD, and webhook endpoints' signing secrets,
	// bound to WebhookSecretAD) and saves the values it returns, and
	// replaces the key check with check, in one transaction: all or
	// nothing. It returns how many values it rewrapped, or rewrap's first
	// error wrapped with what it was rewrapping, having saved nothing.
	RewrapSecrets(ctx context.Context, rewrap func(sealed, ad []byte) ([]byte, error), check []byte) (int, error)
}
