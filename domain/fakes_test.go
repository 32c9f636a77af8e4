package domain

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"
)

// keyRepo is an in-memory APIKeyRepository that honours the port's
// documented semantics and counts calls, so tests can check that a rejected
// request stored nothing or never reached storage.
type keyRepo struct {
	mu      sync.Mutex
	audit   *auditLog // entries are appended with the change, or neither is
	keys    map[string]*APIKey
	creates int
	finds   int
	updates int
	// versionReads counts APIKeyVersions calls.
	versionReads int
	touches      []map[string]time.Time
	// createErr and findErr, when set, make CreateAPIKey and the two finds
	// fail as a broken database would.
	createErr, findErr error
	// touchErr, when set, makes TouchAPIKeys fail without storing anything.
	touchErr error
	// onTouch, when set, runs at the start of TouchAPIKeys, before the lock,
	// so a test can act while a flush is in flight.
	onTouch func()
	// afterFind, when set, runs once, after FindAPIKeyByID has read a key
	// and before it returns it, so a test can change the key while a read
	// is in flight.
	afterFind func()
}

var _ APIKeyRepository = (*keyRepo)(nil)

func newKeyRepo() *keyRepo {
	return &keyRepo{keys: map[string]*APIKey{}, audit: newAuditLog()}
}

func (r *keyRepo) CreateAPIKey(_ context.Context, k *APIKey, audit *AuditEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.creates++
	if r.createErr != nil {
		return r.createErr
	}
	if _, ok := r.keys[k.ID]; ok {
		return Errorf(ECONFLICT, "API key %s exists", k.ID)
	}
	if creator, ok := r.keys[k.CreatedBy]; ok && creator.RevokedAt != nil {
		return Errorf(EUNAUTHENTICATED, "API key %s has been revoked", creator.ID)
	}
	if err := r.audit.add(audit); err != nil {
		return err
	}
	k.Version = 1
	r.keys[k.ID] = cloneKey(k)
	return nil
}

func (r *keyRepo) FindAPIKeyByID(_ context.Context, id string) (*APIKey, error) {
	k, err := r.findAPIKeyByID(id)
	r.mu.Lock()
	after := r.afterFind
	r.afterFind = nil
	r.mu.Unlock()
	if after != nil {
		after()
	}
	return k, err
}

func (r *keyRepo) findAPIKeyByID(id string) (*APIKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finds++
	if r.findErr != nil {
		return nil, r.findErr
	}
	k, ok := r.keys[id]
	if !ok {
		return nil, Errorf(ENOTFOUND, "API key %q not found", id)
	}
	return cloneKey(k), nil
}

func (r *keyRepo) FindAPIKeys(_ context.Context, f APIKeyFilter) ([]*APIKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.finds++
	if r.findErr != nil {
		return nil, r.findErr
	}
	var out []*APIKey
	for _, id := range slices.Sorted(maps.Keys(r.keys)) {
		if id <= f.AfterID || (f.CreatedBy != "" && r.keys[id].CreatedBy != f.CreatedBy) {
			continue
		}
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
		out = append(out, cloneKey(r.keys[id]))
	}
	return out, nil
}

// UpdateAPIKey changes a copy and saves it only when update succeeds, as a
// rolled-back transaction would.
func (r *keyRepo) UpdateAPIKey(_ context.Context, id string, update func(*APIKey) error, audit *AuditEntry) (*APIKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates++
	stored, ok := r.keys[id]
	if !ok {
		return nil, Errorf(ENOTFOUND, "API key %q not found", id)
	}
	k := cloneKey(stored)
	if err := update(k); err != nil {
		return nil, err
	}
	k.Version = stored.Version + 1
	if err := r.audit.add(audit); err != nil {
		return nil, err
	}
	r.keys[id] = cloneKey(k)
	return k, nil
}

func (r *keyRepo) APIKeyVersions(_ context.Context, ids []string) (map[string]int64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.versionReads++
	if r.findErr != nil {
		return nil, r.findErr
	}
	out := map[string]int64{}
	for _, id := range ids {
		if k, ok := r.keys[id]; ok {
			out[id] = k.Version
		}
	}
	return out, nil
}

// RevokeAPIKeyTree changes copies and saves them only when check succeeds,
// as a rolled-back transaction would.
func (r *keyRepo) RevokeAPIKeyTree(_ context.Context, id string, at time.Time, check func(*APIKey) error,
	audit func(*APIKey, []*APIKey) []*AuditEntry) (*APIKey, []*APIKey, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates++
	stored, ok := r.keys[id]
	if !ok {
		return nil, nil, Errorf(ENOTFOUND, "API key %q not found", id)
	}
	root := cloneKey(stored)
	if err := check(root); err != nil {
		return nil, nil, err
	}
	if root.RevokedAt == nil {
		root.RevokedAt = &at
		root.Version++
	}
	var revoked []*APIKey
	for level := []string{id}; len(level) > 0; {
		var next []string
		for _, kid := range slices.Sorted(maps.Keys(r.keys)) {
			k := r.keys[kid]
			if !slices.Contains(level, k.CreatedBy) {
				continue
			}
			next = append(next, kid)
			if k.RevokedAt == nil {
				c := cloneKey(k)
				c.RevokedAt = &at
				c.Version++
				revoked = append(revoked, c)
			}
		}
		level = next
	}
	if err := r.audit.add(audit(cloneKey(root), cloneKeys(revoked))...); err != nil {
		return nil, nil, err
	}
	r.keys[id] = cloneKey(root)
	for _, k := range revoked {
		r.keys[k.ID] = cloneKey(k)
	}
	return root, revoked, nil
}

func cloneKeys(ks []*APIKey) []*APIKey {
	out := make([]*APIKey, len(ks))
	for i, k := range ks {
		out[i] = cloneKey(k)
	}
	return out
}

func (r *keyRepo) TouchAPIKeys(_ context.Context, lastUsed map[string]time.Time) error {
	r.mu.Lock()
	onTouch := r.onTouch
	r.mu.Unlock()
	if onTouch != nil {
		onTouch()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.touches = append(r.touches, maps.Clone(lastUsed))
	if r.touchErr != nil {
		return r.touchErr
	}
	for id, t := range lastUsed {
		k, ok := r.keys[id]
		if !ok {
			continue
		}
		if k.LastUsedAt == nil || t.After(*k.LastUsedAt) {
			k.LastUsedAt = &t
		}
	}
	return nil
}

// stored returns a copy of the stored key, or nil.
func (r *keyRepo) stored(id string) *APIKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := r.keys[id]; ok {
		return cloneKey(k)
	}
	return nil
}

// set runs f with the repo locked, to change its failure switches.
func (r *keyRepo) set(f func(r *keyRepo)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *keyRepo) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.keys)
}

func (r *keyRepo) touchCalls() []map[string]time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.touches)
}

func (r *keyRepo) calls() (creates, finds, updates int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.creates, r.finds, r.updates
}

func cloneKey(k *APIKey) *APIKey {
	c := *k
	c.Scopes = slices.Clone(k.Scopes)
	c.AllowedCIDRs = slices.Clone(k.AllowedCIDRs)
	c.PreviousSecretExpiresAt = cloneTime(k.PreviousSecretExpiresAt)
	c.ExpiresAt = cloneTime(k.ExpiresAt)
	c.RevokedAt = cloneTime(k.RevokedAt)
	c.LastUsedAt = cloneTime(k.LastUsedAt)
	return &c
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// projectRepo is an in-memory ProjectRepository.
type projectRepo struct {
	mu       sync.Mutex
	projects map[string]*Project
	calls    int
	filters  []ProjectFilter
}

var _ ProjectRepository = (*projectRepo)(nil)

func newProjectRepo(ps ...*Project) *projectRepo {
	r := &projectRepo{projects: map[string]*Project{}}
	for _, p := range ps {
		r.projects[p.ID] = p
	}
	return r
}

func (r *projectRepo) FindProjectByID(_ context.Context, id string) (*Project, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	p, ok := r.projects[id]
	if !ok {
		return nil, Errorf(ENOTFOUND, "project %q not found", id)
	}
	return p, nil
}

func (r *projectRepo) FindProjects(_ context.Context, f ProjectFilter) ([]*Project, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	r.filters = append(r.filters, f)
	var out []*Project
	for _, id := range slices.Sorted(maps.Keys(r.projects)) {
		p := r.projects[id]
		if id <= f.AfterID || !f.Matches(p) {
			continue
		}
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
		out = append(out, p)
	}
	return out, nil
}

func (r *projectRepo) callCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// clock is a settable time source for the services' now field.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2025, 3, 14, 15, 9, 26, 535_897_000, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestKeyService returns a service over an empty fake repo with a fixed
// clock.
func newTestKeyService() (*APIKeyService, *keyRepo, *clock) {
	repo, clk := newKeyRepo(), newClock()
	s := NewAPIKeyService(repo, NewAuditService(repo.audit, nil), nil, nil)
	s.now = clk.Now
	return s, repo, clk
}

// keyContext returns a context whose caller is the key k.
func keyContext(tb testing.TB, k *APIKey) context.Context {
	tb.Helper()
	return NewContextWithCaller(tb.Context(), &Caller{Key: k})
}

// operatorContext returns a context whose caller is the operator.
func operatorContext(tb testing.TB) context.Context {
	tb.Helper()
	return NewOperatorContext(tb.Context())
}

// mustCreateKey creates a key as the operator and returns it with its token.
func mustCreateKey(tb testing.TB, s *APIKeyService, in CreateAPIKey) (*APIKey, string) {
	tb.Helper()
	k, token, err := s.Create(operatorContext(tb), in)
	if err != nil {
		tb.Fatalf("Create(%+v): %v", in, err)
	}
	return k, token
}

// wantCode fails the test unless err carries code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := ErrorCode(err); got != code {
		tb.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

func ptr[T any](v T) *T { return &v }
