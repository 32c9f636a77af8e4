package storetest

import (
	"context"
	"testing"

	"github.com/rdev-hq/rdev/domain"
)

// BenchmarkAuditedExecute measures CommandService.Execute over a real store,
// as executeCommand calls it: "audited" writes the command and its audit
// entry in one transaction (locking the chain head), "keyed" does the same
// with the entry MACed with an audit key, and "unaudited" is the same
// service without an audit log, the baseline. newStore returns a fresh,
// migrated store. Run it with
//
//	go test -run '^$' -bench AuditedExecute -count 6 ./infra/sqlite ./infra/postgres
func BenchmarkAuditedExecute(b *testing.B, newStore func(b *testing.B) AuditStore) {
	for _, name := range []string{"unaudited", "audited", "keyed"} {
		b.Run(name, func(b *testing.B) {
			s := newStore(b)
			var audit *domain.AuditService
			var keys *domain.AuditKeyring
			if name != "unaudited" {
				audit = domain.NewAuditService(s, nil)
			}
			if name == "keyed" {
				keys = auditTestKeys(b)
				s.SignAuditWith(keys)
			}
			limits := domain.DefaultCommandLimits
			limits.MaxQueuedPerKey = 0
			svc := domain.NewCommandService(s, runningProjects{}, nopHub{}, nil, audit, limits, nil)
			ctx := domain.NewContextWithCaller(b.Context(), &domain.Caller{Key: &domain.APIKey{ID: "0000benchkey0000", Scopes: domain.Scopes{domain.ScopeAdmin}}})
			in := domain.ExecuteCommand{ProjectID: "web", Argv: []string{"make", "test"}, Env: []domain.EnvVar{{Name: "API_TOKEN", Value: "x"}}}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := svc.Execute(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if audit != nil {
				r, err := domain.AuditVerifier{Keys: keys}.Verify(context.Background(), s)
				if err != nil || r.Break != nil || r.Entries != int64(b.N) {
					b.Fatalf("Verify = %+v, %v; want %d intact entries", r, err, b.N)
				}
			}
		})
	}
}

// runningProjects is a project source where every project exists and runs.
type runningProjects struct{}

// FindProjectByID returns a RUNNING project of any ID.
func (runningProjects) FindProjectByID(_ context.Context, id string) (*domain.Project, error) {
	return &domain.Project{ID: id, Status: domain.ProjectRunning}, nil
}

// FindProjects returns none.
func (runningProjects) FindProjects(context.Context, domain.ProjectFilter) ([]*domain.Project, error) {
	return nil, nil
}

// nopHub is a hub without subscribers.
type nopHub struct{}

// Publish drops e.
func (nopHub) Publish(string, domain.Event) {}

// Subscribe returns a subscription that never delivers.
func (nopHub) Subscribe(string, int) domain.HubSubscription { return nopSubscription{} }

type nopSubscription struct{}

// Events returns a channel that never delivers.
func (nopSubscription) Events() <-chan domain.Event { return nil }

// Lagged reports false.
func (nopSubscription) Lagged() bool { return false }

// Done returns a channel that is never closed.
func (nopSubscription) Done() <-chan struct{} { return nil }

// Close does nothing.
func (nopSubscription) Close() {}
