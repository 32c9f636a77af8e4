package resolvers

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// countingSecrets is a SecretStore that lists fixed secrets and counts its
// reads.
type countingSecrets struct {
	mu          sync.Mutex
	byProject   map[string][]*domain.Secret
	one, manyOf int
}

func (c *countingSecrets) PutSecret(context.Context, *domain.Secret, string, int, *domain.AuditEntry) (*domain.Secret, error) {
	return nil, domain.Errorf(domain.EUNAVAILABLE, "read only")
}

func (c *countingSecrets) DeleteSecret(context.Context, string, string, *domain.AuditEntry) error {
	return domain.Errorf(domain.EUNAVAILABLE, "read only")
}

func (c *countingSecrets) FindSecrets(_ context.Context, id string) ([]*domain.Secret, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.one++
	return c.byProject[id], nil
}

func (c *countingSecrets) FindSecretsOf(_ context.Context, ids []string) (map[string][]*domain.Secret, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.manyOf++
	out := map[string][]*domain.Secret{}
	for _, id := range ids {
		if l := c.byProject[id]; l != nil {
			out[id] = l
		}
	}
	return out, nil
}

func (c *countingSecrets) OpenSecrets(context.Context, string) ([]*domain.SecretValue, error) {
	return nil, nil
}

// TestHandler_ProjectSecretsBatched checks that Project.secrets reads the
// secrets of every project of an operation in one store read, not one per
// project, and gives a project without secrets an empty list.
func TestHandler_ProjectSecretsBatched(t *testing.T) {
	at := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	store := &countingSecrets{byProject: map[string][]*domain.Secret{
		"alpha": {{ProjectID: "alpha", Name: "A_TOKEN", Delivery: domain.SecretAsEnv, CreatedAt: at, UpdatedAt: at}},
		"beta":  {{ProjectID: "beta", Name: "KEY", Delivery: domain.SecretAsFile, CreatedAt: at, UpdatedAt: at}},
	}}
	ts := newTestServer(t, func(r *Resolver) {
		r.SecretService = domain.NewSecretService(store, &memProjects{}, nil)
	})
	r := ts.query(t, ts.admin, `{ projects { nodes { id secrets { name delivery } } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
	if store.manyOf != 1 || store.one != 0 {
		t.Errorf("%d batched and %d single reads for three projects' secrets, want 1 and 0", store.manyOf, store.one)
	}
	want := `{"projects":{"nodes":[{"id":"alpha","secrets":[{"name":"A_TOKEN","delivery":"ENV"}]},` +
		`{"id":"beta","secrets":[{"name":"KEY","delivery":"FILE"}]},{"id":"gamma","secrets":[]}]}}`
	if string(r.Data) != want {
		t.Errorf("got  %s\nwant %s", r.Data, want)
	}
}
