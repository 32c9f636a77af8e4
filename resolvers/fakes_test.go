package resolvers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// memKeys is an in-memory domain.APIKeyRepository and
// domain.AuditRepository.
type memKeys struct {
	mu    sync.Mutex
	keys  map[string]domain.APIKey
	calls int // store calls, to prove rejected requests reach none
	audit []*domain.AuditEntry
	down  bool // FindAPIKeyByID fails as a store that is down does
}

// record appends e, if any, with m locked.
func (m *memKeys) record(e *domain.AuditEntry) {
	if e == nil {
		return
	}
	prevSeq, prevHash := int64(0), ""
	if n := len(m.audit); n > 0 {
		prevSeq, prevHash = m.audit[n-1].Seq, m.audit[n-1].Hash
	}
	e.Seal(prevSeq, prevHash)
	m.audit = append(m.audit, e)
}

func (m *memKeys) AppendAudit(_ context.Context, entries ...*domain.AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		m.record(e)
	}
	return nil
}

// FindAuditEntries pages newest first by Seq; filters other than the actor
// are left to the store contract tests.
func (m *memKeys) FindAuditEntries(_ context.Context, f domain.AuditFilter) ([]*domain.AuditEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*domain.AuditEntry
	for _, e := range slices.Backward(m.audit) {
		if (f.BeforeSeq == 0 || e.Seq < f.BeforeSeq) && (f.Actor == "" || e.Actor == f.Actor) && (f.Limit == 0 || len(out) < f.Limit) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memKeys) ReadAuditChain(context.Context, int64, int) ([]*domain.AuditEntry, error) {
	return nil, errors.New("not used by these tests")
}

func (m *memKeys) AuditHead(context.Context) (domain.AuditHead, error) {
	return domain.AuditHead{}, errors.New("not used by these tests")
}

func newMemKeys() *memKeys { return &memKeys{keys: map[string]domain.APIKey{}} }

func (m *memKeys) CreateAPIKey(_ context.Context, k *domain.APIKey, audit *domain.AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if _, ok := m.keys[k.ID]; ok {
		return domain.Errorf(domain.ECONFLICT, "exists")
	}
	k.Version = 1
	m.keys[k.ID] = *k
	m.record(audit)
	return nil
}

func (m *memKeys) FindAPIKeyByID(_ context.Context, id string) (*domain.APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.down {
		return nil, errDown
	}
	k, ok := m.keys[id]
	if !ok {
		return nil, domain.Errorf(domain.ENOTFOUND, "API key %q not found", id)
	}
	return &k, nil
}

// setDown makes FindAPIKeyByID fail with errDown, or work again.
func (m *memKeys) setDown(down bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = down
}

// errDown is how a store reports that its database is down.
var errDown = fmt.Errorf("%w: dial tcp 127.0.0.1:5432: connect: connection refused",
	domain.Errorf(domain.EUNAVAILABLE, "the database is unavailable"))

func (m *memKeys) FindAPIKeys(_ context.Context, f domain.APIKeyFilter) ([]*domain.APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	var out []*domain.APIKey
	for _, id := range slices.Sorted(maps.Keys(m.keys)) {
		if id > f.AfterID && (f.Limit == 0 || len(out) < f.Limit) && (f.CreatedBy == "" || m.keys[id].CreatedBy == f.CreatedBy) {
			k := m.keys[id]
			out = append(out, &k)
		}
	}
	return out, nil
}

func (m *memKeys) UpdateAPIKey(_ context.Context, id string, update func(*domain.APIKey) error, audit *domain.AuditEntry) (*domain.APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	k, ok := m.keys[id]
	if !ok {
		return nil, domain.Errorf(domain.ENOTFOUND, "API key %q not found", id)
	}
	version := k.Version
	if err := update(&k); err != nil {
		return nil, err
	}
	k.Version = version + 1
	m.keys[id] = k
	m.record(audit)
	return &k, nil
}

func (m *memKeys) APIKeyVersions(_ context.Context, ids []string) (map[string]int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.down {
		return nil, errDown
	}
	out := map[string]int64{}
	for _, id := range ids {
		if k, ok := m.keys[id]; ok {
			out[id] = k.Version
		}
	}
	return out, nil
}

func (m *memKeys) RevokeAPIKeyTree(_ context.Context, id string, at time.Time, check func(*domain.APIKey) error,
	audit func(*domain.APIKey, []*domain.APIKey) []*domain.AuditEntry) (*domain.APIKey, []*domain.APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	root, ok := m.keys[id]
	if !ok {
		return nil, nil, domain.Errorf(domain.ENOTFOUND, "API key %q not found", id)
	}
	if err := check(&root); err != nil {
		return nil, nil, err
	}
	if root.RevokedAt == nil {
		root.RevokedAt = &at
		root.Version++
	}
	m.keys[id] = root
	var revoked []*domain.APIKey
	for parents := []string{id}; len(parents) > 0; {
		var children []string
		for _, kid := range slices.Sorted(maps.Keys(m.keys)) {
			if k := m.keys[kid]; slices.Contains(parents, k.CreatedBy) {
				children = append(children, kid)
				if k.RevokedAt == nil {
					k.RevokedAt = &at
					k.Version++
					m.keys[kid] = k
					revoked = append(revoked, &k)
				}
			}
		}
		parents = children
	}
	for _, e := range audit(&root, revoked) {
		m.record(e)
	}
	return &root, revoked, nil
}

func (m *memKeys) TouchAPIKeys(_ context.Context, lastUsed map[string]time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	for id, t := range lastUsed {
		if k, ok := m.keys[id]; ok {
			k.LastUsedAt = &t
			m.keys[id] = k
		}
	}
	return nil
}

func (m *memKeys) storeCalls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

// memProjects is a fixed domain.ProjectRepository. A project named "panic"
// panics, one named "broken" fails, one named "down" fails as a store that
// is down does, and one named "slow" waits for its context to end, to
// exercise the error paths.
type memProjects struct{ projects []*domain.Project }

func (m *memProjects) FindProjectByID(ctx context.Context, id string) (*domain.Project, error) {
	switch id {
	case "panic":
		panic("boom: secret internals")
	case "broken":
		return nil, errors.New("dial tcp 10.0.0.7:5432: connection refused")
	case "down":
		return nil, errDown
	case "slow":
		<-ctx.Done()
		return nil, fmt.Errorf("query projects: %w", ctx.Err())
	}
	for _, p := range m.projects {
		if p.ID == id {
			return p, nil
		}
	}
	return nil, domain.Errorf(domain.ENOTFOUND, "project %q not found", id)
}

func (m *memProjects) FindProjects(_ context.Context, f domain.ProjectFilter) ([]*domain.Project, error) {
	var out []*domain.Project
	for _, p := range m.projects {
		if strings.Compare(p.ID, f.AfterID) > 0 && f.Matches(p) && (f.Limit == 0 || len(out) < f.Limit) {
			out = append(out, p)
		}
	}
	return out, nil
}

// memCommands answers FindCommandsForProjects from a fixed list and counts
// calls; other CommandRepository methods are not used by these tests (the
// embedded nil interface makes them panic if they are).
type memCommands struct {
	domain.CommandRepository
	mu       sync.Mutex
	commands []*domain.Command
	batches  int
}

func (m *memCommands) FindCommandsForProjects(_ context.Context, ids []string, status domain.CommandStatus, limit int) (map[string][]*domain.Command, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches++
	out := map[string][]*domain.Command{}
	for _, c := range m.commands {
		if slices.Contains(ids, c.ProjectID) && (status == "" || c.Status == status) && len(out[c.ProjectID]) < limit {
			out[c.ProjectID] = append(out[c.ProjectID], c)
		}
	}
	return out, nil
}

// CreateCommand keeps the command, for tests that run executeCommand.
func (m *memCommands) CreateCommand(_ context.Context, c *domain.Command, _ *domain.AuditEntry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.commands = append(m.commands, c.Clone())
	return nil
}

// CountQueued counts the key's QUEUED commands.
func (m *memCommands) CountQueued(_ context.Context, keyID string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.commands {
		if c.KeyID == keyID && c.Status == domain.CommandQueued {
			n++
		}
	}
	return n, nil
}

func (m *memCommands) calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.batches
}

// nopHub is a domain.Hub with no subscribers.
type nopHub struct{}

func (nopHub) Publish(string, domain.Event) {}

func (nopHub) Subscribe(string, int) domain.HubSubscription { return nopSub{make(chan domain.Event)} }

type nopSub struct{ ch chan domain.Event }

func (s nopSub) Events() <-chan domain.Event { return s.ch }
func (nopSub) Lagged() bool                  { return false }
func (nopSub) Done() <-chan struct{}         { return nil }
func (nopSub) Close()                        {}
