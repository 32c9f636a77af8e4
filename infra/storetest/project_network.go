package storetest

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// ProjectNetworkStore is a store of project network policies whose changes
// append audit entries.
type ProjectNetworkStore interface {
	domain.ProjectNetworkRepository
	domain.AuditRepository
}

// TestProjectNetworkRepository runs the domain.ProjectNetworkRepository
// contract. newStore is called once per subtest and must return an empty
// store that no other subtest uses; subtests run in parallel.
func TestProjectNetworkRepository(t *testing.T, newStore func(t *testing.T) ProjectNetworkStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, ProjectNetworkStore)
	}{
		{"SetAndFind", testSetProjectNetwork},
		{"Reset", testResetProjectNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

func mustFindProjectNetworks(tb testing.TB, s ProjectNetworkStore, ids ...string) map[string]domain.ProjectNetwork {
	tb.Helper()
	got, err := s.FindProjectNetworks(tb.Context(), ids)
	if err != nil {
		tb.Fatalf("FindProjectNetworks: %v", err)
	}
	return got
}

func testSetProjectNetwork(t *testing.T, s ProjectNetworkStore) {
	ctx := t.Context()
	if got := mustFindProjectNetworks(t, s, "pay"); len(got) != 0 {
		t.Fatalf("an empty store has %v", got)
	}
	audit := webhookAudit(domain.AuditProjectNetwork, "pay")
	audit.Details = map[string]string{"project": "pay", "network": "NONE"}
	for _, set := range []struct {
		id string
		n  domain.ProjectNetwork
	}{{"pay", domain.NetworkNone}, {"search", domain.NetworkLoopback}, {"pay", domain.NetworkAny}, {"pay", domain.NetworkNone}} {
		a := audit
		if set.id != "pay" {
			a = nil
		}
		if err := s.SetProjectNetwork(ctx, set.id, set.n, a); err != nil {
			t.Fatalf("SetProjectNetwork(%s, %s): %v", set.id, set.n, err)
		}
	}
	want := map[string]domain.ProjectNetwork{"pay": domain.NetworkNone, "search": domain.NetworkLoopback}
	if diff := cmp.Diff(want, mustFindProjectNetworks(t, s, "pay", "search", "other")); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]domain.ProjectNetwork{"search": domain.NetworkLoopback}, mustFindProjectNetworks(t, s, "search")); diff != "" {
		t.Errorf("search's policy (-want +got):\n%s", diff)
	}
	if got := mustFindProjectNetworks(t, s); len(got) != 0 {
		t.Errorf("no ids found %v", got)
	}
	es, err := s.ReadAuditChain(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[0].Action != domain.AuditProjectNetwork || es[0].Details["network"] != "NONE" {
		t.Errorf("audit chain holds %d entries, first %+v; want 3 of %s", len(es), es[0], domain.AuditProjectNetwork)
	}
}

func testResetProjectNetwork(t *testing.T, s ProjectNetworkStore) {
	ctx := t.Context()
	for _, id := range []string{"pay", "search"} {
		if err := s.SetProjectNetwork(ctx, id, domain.NetworkNone, nil); err != nil {
			t.Fatal(err)
		}
	}
	audit := webhookAudit(domain.AuditProjectNetwork, "pay")
	for range 2 { // resetting a project without a policy is no error
		if err := s.SetProjectNetwork(ctx, "pay", "", audit); err != nil {
			t.Fatalf("reset: %v", err)
		}
	}
	want := map[string]domain.ProjectNetwork{"search": domain.NetworkNone}
	if diff := cmp.Diff(want, mustFindProjectNetworks(t, s, "pay", "search")); diff != "" {
		t.Errorf("policies after reset (-want +got):\n%s", diff)
	}
	if es, err := s.ReadAuditChain(ctx, 0, 100); err != nil || len(es) != 2 {
		t.Errorf("audit chain: %d entries, %v; want 2", len(es), err)
	}
}
