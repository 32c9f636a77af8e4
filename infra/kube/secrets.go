package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/rdev-hq/rdev/domain"
)

// Names and labels of the Kubernetes Secrets that hold projects' secrets.
const (
	// SecretNamePrefix followed by the project's ID names its Secret.
	SecretNamePrefix = "rdev-project-secrets-" //nolint:gosec // a name prefix, not a credential
	// ManagedByLabel set to ManagedBy marks a Secret as rdev's: rdev
	// changes no other.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedBy      = "rdev"
	// SecretTimesAnnotation holds, as JSON, each key's delivery (ENV or
	// FILE), creation and update times and the API key that created it:
	// what Project.secrets lists, never a value.
	SecretTimesAnnotation = "rdev.dev/secrets" //nolint:gosec // an annotation key, not a credential
	// MaxSecretBytes is the most a Secret's data (keys and values) may
	// hold, as the API server enforces it.
	MaxSecretBytes = 1 << 20
	// DefaultSecretsTimeout bounds each call to the API server.
	DefaultSecretsTimeout = 15 * time.Second
)

// putRetries is how many times a change that lost a race with another
// writer of the same Secret (another replica) is tried again.
const putRetries = 10

// SecretName returns the name of the Secret holding project id's secrets.
func SecretName(projectID string) string { return SecretNamePrefix + projectID }

// Secrets is a domain.SecretStore keeping each project's secrets in a
// Kubernetes Secret of type Opaque, SecretName(project), in the namespace of
// the project's pod: one key per secret, labelled as rdev's
// (ManagedByLabel) and with the project's label, the times in an
// annotation. It reads the API server on every call (no cache: a command
// gets the values as they are when it starts), and changes a Secret only by
// an update that names the version it read, so concurrent writers (several
// replicas) never lose each other's changes. A Secret of that name that is
// not rdev's is never changed nor read: ECONFLICT.
//
// Its values are protected as the cluster protects Secrets (RBAC, and
// encryption at rest if the API server is configured for it); rdev's own
// key-encryption key plays no part.
type Secrets struct {
	client   kubernetes.Interface
	projects domain.ProjectRepository
	labelKey string
	audit    domain.AuditRepository
	timeout  time.Duration
}

var _ domain.SecretStore = (*Secrets)(nil)

// SecretsOptions configures Secrets. Zero fields take the defaults named
// beside them.
type SecretsOptions struct {
	// LabelKey is the label whose value is the project ID
	// (DefaultLabelKey).
	LabelKey string
	// Audit records the changes' audit entries, right after each change
	// (nil: none are recorded).
	Audit domain.AuditRepository
	// Timeout bounds each call to the API server
	// (DefaultSecretsTimeout).
	Timeout time.Duration
}

// NewSecrets returns the store over client, finding each project's
// namespace in projects.
func NewSecrets(client kubernetes.Interface, projects domain.ProjectRepository, opts SecretsOptions) *Secrets {
	if opts.LabelKey == "" {
		opts.LabelKey = DefaultLabelKey
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSecretsTimeout
	}
	return &Secrets{client: client, projects: projects, labelKey: opts.LabelKey, audit: opts.Audit, timeout: opts.Timeout}
}

// NewSecrets returns the store of the cluster's projects, through its
// breaker; see the package-level NewSecrets.
func (c *Cluster) NewSecrets(projects domain.ProjectRepository, audit domain.AuditRepository) *Secrets {
	return NewSecrets(c.client, projects, SecretsOptions{LabelKey: c.cfg.LabelKey, Audit: audit})
}

// secretMeta is one key's entry in SecretTimesAnnotation.
type secretMeta struct {
	// Delivery is how the secret reaches commands; "" (a key added by
	// hand) is SecretAsEnv.
	Delivery  domain.SecretDelivery `json:"delivery,omitempty"`
	CreatedAt time.Time             `json:"createdAt"`
	UpdatedAt time.Time             `json:"updatedAt"`
	CreatedBy string                `json:"createdBy,omitempty"`
}

// projectSecret is a project's Secret as read: nil obj if there is none.
type projectSecret struct {
	ns, name string
	obj      *corev1.Secret
	meta     map[string]secretMeta
	// names are the keys that are valid secret names, sorted: a key added
	// by hand that rdev would refuse (PATH, LD_PRELOAD, …) never reaches a
	// command.
	names []string
}

// PutSecret sets the key s.Name of the project's Secret to value, and its
// delivery in SecretTimesAnnotation, creating the Secret if it has none,
// and then appends audit. It returns ECONFLICT
// if the project would have more than limit secrets or more than
// MaxSecretBytes, or if the Secret is not rdev's.
func (s *Secrets) PutSecret(ctx context.Context, sec *domain.Secret, value string, limit int, audit *domain.AuditEntry) (*domain.Secret, error) {
	var saved *domain.Secret
	err := s.change(ctx, sec.ProjectID, func(ps *projectSecret) error {
		m, ok := ps.meta[sec.Name]
		if _, had := ps.obj.Data[sec.Name]; !had || !ok {
			if !had && len(ps.obj.Data) >= limit {
				return domain.Errorf(domain.ECONFLICT, "project %q has %d secrets, the most it may have: delete one first", sec.ProjectID, len(ps.obj.Data))
			}
			m = secretMeta{CreatedAt: sec.CreatedAt, CreatedBy: sec.CreatedBy}
		}
		m.UpdatedAt, m.Delivery = sec.UpdatedAt, sec.Delivery
		if size := dataSize(ps.obj.Data) - len(ps.obj.Data[sec.Name]) + len(sec.Name) + len(value); size > MaxSecretBytes {
			return domain.Errorf(domain.ECONFLICT, "project %q's secrets would take %d bytes, more than the %d a Kubernetes Secret holds: delete some first", sec.ProjectID, size, MaxSecretBytes)
		}
		ps.obj.Data[sec.Name] = []byte(value)
		ps.meta[sec.Name] = m
		saved = m.secret(sec.ProjectID, sec.Name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.record(ctx, audit); err != nil {
		return nil, fmt.Errorf("secret %s of project %s was set, but %w", sec.Name, sec.ProjectID, err)
	}
	return saved, nil
}

// DeleteSecret removes the key name from the project's Secret (an emptied
// Secret is left in place), and then appends audit. It returns ENOTFOUND
// if there is no such key.
func (s *Secrets) DeleteSecret(ctx context.Context, projectID, name string, audit *domain.AuditEntry) error {
	err := s.change(ctx, projectID, func(ps *projectSecret) error {
		if _, ok := ps.obj.Data[name]; !ok {
			return domain.Errorf(domain.ENOTFOUND, "project %q has no secret %q", domain.Clip(projectID), domain.Clip(name))
		}
		delete(ps.obj.Data, name)
		delete(ps.meta, name)
		return nil
	})
	if err != nil {
		return err
	}
	if err := s.record(ctx, audit); err != nil {
		return fmt.Errorf("secret %s of project %s was deleted, but %w", name, projectID, err)
	}
	return nil
}

// FindSecrets returns the keys of the project's Secret, sorted, with their
// times; none if it has no Secret.
func (s *Secrets) FindSecrets(ctx context.Context, projectID string) ([]*domain.Secret, error) {
	ps, err := s.read(ctx, projectID)
	if err != nil || ps.obj == nil {
		return []*domain.Secret{}, err
	}
	out := make([]*domain.Secret, 0, len(ps.names))
	for _, name := range ps.names {
		out = append(out, ps.secret(projectID, name))
	}
	return out, nil
}

// FindSecretsOf returns the secrets of each of projectIDs, by project: one
// read of each project's Secret, as Kubernetes keeps them apart. A project
// whose pod is gone meanwhile is absent, as one without secrets is.
func (s *Secrets) FindSecretsOf(ctx context.Context, projectIDs []string) (map[string][]*domain.Secret, error) {
	out := make(map[string][]*domain.Secret, len(projectIDs))
	for _, id := range projectIDs {
		list, err := s.FindSecrets(ctx, id)
		if domain.ErrorCode(err) == domain.ENOTFOUND {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(list) > 0 {
			out[id] = list
		}
	}
	return out, nil
}

// OpenSecrets returns the keys of the project's Secret with their values,
// sorted by name, as the API server has them now.
func (s *Secrets) OpenSecrets(ctx context.Context, projectID string) ([]*domain.SecretValue, error) {
	ps, err := s.read(ctx, projectID)
	if err != nil || ps.obj == nil {
		return nil, err
	}
	out := make([]*domain.SecretValue, 0, len(ps.names))
	for _, name := range ps.names {
		out = append(out, &domain.SecretValue{Secret: *ps.secret(projectID, name), Value: string(ps.obj.Data[name])})
	}
	return out, nil
}

// change reads the project's Secret (an empty one if it has none), lets
// edit change its data and times, and writes it back conditionally on the
// version read, trying again from the read when another writer came first.
func (s *Secrets) change(ctx context.Context, projectID string, edit func(*projectSecret) error) error {
	for range putRetries {
		ps, err := s.read(ctx, projectID)
		if err != nil {
			return err
		}
		if ps.obj == nil {
			ps.obj = s.newSecret(ps.ns, projectID)
		}
		if ps.obj.Data == nil {
			ps.obj.Data = map[string][]byte{}
		}
		if err := edit(ps); err != nil {
			return err
		}
		meta, err := json.Marshal(ps.meta)
		if err != nil {
			return errorf("encode %s: %w", SecretTimesAnnotation, err)
		}
		if ps.obj.Annotations == nil {
			ps.obj.Annotations = map[string]string{}
		}
		ps.obj.Annotations[SecretTimesAnnotation] = string(meta)
		err = s.write(ctx, ps.obj)
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			continue // another writer came first: read its version
		}
		if err != nil {
			return secretsError(err, "write", ps.ns, ps.name)
		}
		return nil
	}
	return domain.Errorf(domain.ECONFLICT, "the secrets of project %q are being changed by other requests; try again", projectID)
}

// write creates obj if it was not read from the API server, else updates
// it conditionally on the version read.
func (s *Secrets) write(ctx context.Context, obj *corev1.Secret) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	api := s.client.CoreV1().Secrets(obj.Namespace)
	var err error
	if obj.ResourceVersion == "" {
		_, err = api.Create(ctx, obj, metav1.CreateOptions{FieldManager: ManagedBy})
	} else {
		_, err = api.Update(ctx, obj, metav1.UpdateOptions{FieldManager: ManagedBy})
	}
	return err
}

// newSecret returns the project's Secret, empty, before it is created.
func (s *Secrets) newSecret(ns, projectID string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: SecretName(projectID),
			Labels: map[string]string{ManagedByLabel: ManagedBy, s.labelKey: projectID},
		},
		Type: corev1.SecretTypeOpaque,
	}
}

// read returns the project's Secret in its pod's namespace, with nil obj
// if there is none. It returns ENOTFOUND for an unknown project and
// ECONFLICT for a Secret of that name that is not rdev's.
func (s *Secrets) read(ctx context.Context, projectID string) (*projectSecret, error) {
	p, err := s.projects.FindProjectByID(ctx, projectID)
	if err != nil {
		return nil, err
	}
	ps := &projectSecret{ns: p.Namespace, name: SecretName(projectID), meta: map[string]secretMeta{}}
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	obj, err := s.client.CoreV1().Secrets(ps.ns).Get(rctx, ps.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return ps, nil
	case err != nil:
		return nil, secretsError(err, "read", ps.ns, ps.name)
	case obj.Labels[ManagedByLabel] != ManagedBy || obj.Labels[s.labelKey] != projectID || obj.Type != corev1.SecretTypeOpaque:
		return nil, domain.Errorf(domain.ECONFLICT, "the Secret %s/%s is not rdev's (it lacks the labels %s=%s and %s=%s, or is not Opaque): rdev neither reads nor changes it; rename it, or label it if it is meant to hold the project's secrets",
			ps.ns, ps.name, ManagedByLabel, ManagedBy, s.labelKey, projectID)
	}
	if raw := obj.Annotations[SecretTimesAnnotation]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &ps.meta); err != nil {
			// Times are for listing only: a damaged annotation loses them,
			// not the values.
			ps.meta = map[string]secretMeta{}
		}
	}
	maps.DeleteFunc(ps.meta, func(name string, _ secretMeta) bool { _, ok := obj.Data[name]; return !ok })
	ps.obj = obj
	ps.names = validNames(obj.Data)
	return ps, nil
}

// secret returns key name of the Secret as a domain secret; a key added
// outside rdev takes the Secret's creation time.
func (ps *projectSecret) secret(projectID, name string) *domain.Secret {
	m, ok := ps.meta[name]
	if !ok {
		t := ps.obj.CreationTimestamp.UTC()
		m = secretMeta{CreatedAt: t, UpdatedAt: t}
	}
	return m.secret(projectID, name)
}

func (m secretMeta) secret(projectID, name string) *domain.Secret {
	d := m.Delivery
	if !d.Valid() {
		d = domain.SecretAsEnv
	}
	return &domain.Secret{ProjectID: projectID, Name: name, Delivery: d, CreatedBy: m.CreatedBy, CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC()}
}

// record appends audit to the audit log, if there is one and an entry.
func (s *Secrets) record(ctx context.Context, audit *domain.AuditEntry) error {
	if s.audit == nil || audit == nil {
		return nil
	}
	if err := s.audit.AppendAudit(context.WithoutCancel(ctx), audit); err != nil {
		return fmt.Errorf("recording it in the audit log failed: %w", err)
	}
	return nil
}

// validNames returns the keys of data that are valid secret names, sorted.
func validNames(data map[string][]byte) []string {
	names := slices.Sorted(maps.Keys(data))
	return slices.DeleteFunc(names, func(n string) bool { return domain.ValidateSecretName(n) != nil })
}

// dataSize is what the API server counts against MaxSecretBytes.
func dataSize(data map[string][]byte) int {
	n := 0
	for k, v := range data {
		n += len(k) + len(v)
	}
	return n
}

// secretsError turns an API server's answer to a call on Secret ns/name
// into a domain error.
func secretsError(err error, verb, ns, name string) error {
	var de *domain.Error
	if errors.As(err, &de) {
		return err // the breaker's UNAVAILABLE
	}
	what := fmt.Sprintf("%s the Secret %s/%s", verb, ns, name)
	if st, ok := apiStatus(err); ok {
		msg := clipMessage(st.Message)
		switch code := int(st.Code); {
		case apierrors.IsForbidden(err):
			return domain.Errorf(domain.EFORBIDDEN, "rdev is not allowed to %s (it needs get, create and update on secrets in the project's namespace): %s", what, msg)
		case apierrors.IsNotFound(err):
			return domain.Errorf(domain.ENOTFOUND, "cannot %s: %s", what, msg)
		case apierrors.IsInvalid(err), apierrors.IsRequestEntityTooLargeError(err), apierrors.IsBadRequest(err):
			return domain.Errorf(domain.EINVALID, "the Kubernetes API server refused to %s: %s", what, msg)
		case apierrors.IsConflict(err):
			return domain.Errorf(domain.ECONFLICT, "cannot %s now: %s", what, msg)
		default:
			return domain.Errorf(domain.EUNAVAILABLE, "the Kubernetes API server failed to %s (%d): %s", what, code, msg)
		}
	}
	if isTransportError(err) || errors.Is(err, context.DeadlineExceeded) {
		return domain.Errorf(domain.EUNAVAILABLE, "the Kubernetes API server cannot be reached to %s: %s", what, clipMessage(err.Error()))
	}
	return fmt.Errorf("kube: %s: %w", what, err)
}
