package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// SecretStore is a store of secrets whose changes append audit entries.
type SecretStore interface {
	domain.SecretRepository
	domain.AuditRepository
}

// TestSecretRepository runs the domain.SecretRepository contract. newStore
// is called once per subtest and must return an empty store that no other
// subtest uses; subtests run in parallel.
func TestSecretRepository(t *testing.T, newStore func(t *testing.T) SecretStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, SecretStore)
	}{
		{"PutSecret", testPutSecret},
		{"PutSecretLimit", testPutSecretLimit},
		{"DeleteSecret", testDeleteSecret},
		{"KeyCheck", testSecretKeyCheck},
		{"RewrapSecrets", testRewrapSecrets},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

func newSealedSecret(project, name string, sealed []byte) *domain.SealedSecret {
	now := at(time.Now())
	return &domain.SealedSecret{
		Secret: domain.Secret{ProjectID: project, Name: name, Delivery: domain.SecretAsEnv, CreatedBy: "key1", CreatedAt: now, UpdatedAt: now},
		Sealed: sealed,
	}
}

func mustPutSecret(tb testing.TB, ctx context.Context, s SecretStore, sec *domain.SealedSecret) *domain.Secret {
	tb.Helper()
	got, err := s.PutSecret(ctx, sec, 100, nil)
	if err != nil {
		tb.Fatalf("PutSecret: %v", err)
	}
	return got
}

func secretAuditActions(tb testing.TB, ctx context.Context, s SecretStore) []string {
	tb.Helper()
	es, err := s.ReadAuditChain(ctx, 0, 1000)
	if err != nil {
		tb.Fatalf("ReadAuditChain: %v", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Action+" "+e.Details["name"])
	}
	return out
}

func testPutSecret(t *testing.T, s SecretStore) {
	ctx := t.Context()
	first := newSealedSecret("pay", "TOKEN", []byte{0, 1, 2, 0xff})
	audit := webhookAudit(domain.AuditSecretSet, "pay")
	audit.Details = map[string]string{"project": "pay", "name": "TOKEN"}
	got, err := s.PutSecret(ctx, first, 100, audit)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&first.Secret, got, cmpOpts...); diff != "" {
		t.Errorf("PutSecret returned (-want +got):\n%s", diff)
	}
	assertUTC(t, "PutSecret", &got.CreatedAt, &got.UpdatedAt)
	mustPutSecret(t, ctx, s, newSealedSecret("pay", "A_FIRST", []byte("a")))
	mustPutSecret(t, ctx, s, newSealedSecret("search", "TOKEN", []byte("other")))

	// Setting again replaces the value, the delivery and the update time
	// only.
	later := newSealedSecret("pay", "TOKEN", []byte("new"))
	later.Delivery = domain.SecretAsFile
	later.CreatedBy, later.CreatedAt, later.UpdatedAt = "key2", at(time.Now().Add(time.Hour)), at(time.Now().Add(time.Hour))
	got = mustPutSecret(t, ctx, s, later)
	if !got.CreatedAt.Equal(first.CreatedAt) || got.CreatedBy != "key1" || !got.UpdatedAt.Equal(later.UpdatedAt) || got.Delivery != domain.SecretAsFile {
		t.Errorf("set again: %+v, want the first creation, the new update time and FILE", got)
	}

	list, err := s.FindSecrets(ctx, "pay")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sec := range list {
		names = append(names, sec.Name+" "+string(sec.Delivery))
		assertUTC(t, "FindSecrets", &sec.CreatedAt, &sec.UpdatedAt)
	}
	if diff := cmp.Diff([]string{"A_FIRST ENV", "TOKEN FILE"}, names); diff != "" {
		t.Errorf("FindSecrets(pay) (-want +got):\n%s", diff)
	}
	sealed, err := s.FindSealedSecrets(ctx, "pay")
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != 2 || !bytes.Equal(sealed[1].Sealed, []byte("new")) || !bytes.Equal(sealed[0].Sealed, []byte("a")) ||
		sealed[1].Delivery != domain.SecretAsFile || sealed[0].Delivery != domain.SecretAsEnv {
		t.Errorf("FindSealedSecrets(pay) = %+v", sealed)
	}
	of, err := s.FindSecretsOf(ctx, []string{"pay", "search", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	byProject := map[string][]string{}
	for p, list := range of {
		for _, sec := range list {
			if sec.ProjectID != p {
				t.Errorf("FindSecretsOf: %s/%s listed under %s", sec.ProjectID, sec.Name, p)
			}
			byProject[p] = append(byProject[p], sec.Name+" "+string(sec.Delivery))
		}
	}
	if diff := cmp.Diff(map[string][]string{"pay": {"A_FIRST ENV", "TOKEN FILE"}, "search": {"TOKEN ENV"}}, byProject); diff != "" {
		t.Errorf("FindSecretsOf (-want +got):\n%s", diff)
	}
	if none, err := s.FindSecretsOf(ctx, nil); err != nil || len(none) != 0 {
		t.Errorf("FindSecretsOf(none) = %v, %v", none, err)
	}
	if none, err := s.FindSecrets(ctx, "nope"); err != nil || len(none) != 0 {
		t.Errorf("FindSecrets(nope) = %v, %v; want none", none, err)
	}
	if diff := cmp.Diff([]string{domain.AuditSecretSet + " TOKEN"}, secretAuditActions(t, ctx, s)); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func testPutSecretLimit(t *testing.T, s SecretStore) {
	ctx := t.Context()
	const limit = 3
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = s.PutSecret(ctx, newSealedSecret("pay", "S"+string(rune('A'+i)), []byte("v")), limit, nil)
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch domain.ErrorCode(err) {
		case "":
			ok++
		case domain.ECONFLICT:
		default:
			t.Errorf("PutSecret: %v", err)
		}
	}
	list, err := s.FindSecrets(ctx, "pay")
	if err != nil {
		t.Fatal(err)
	}
	if ok != limit || len(list) != limit {
		t.Errorf("%d puts succeeded and %d secrets are stored, want %d", ok, len(list), limit)
	}
	// Replacing one at the limit is no insert.
	if _, err := s.PutSecret(ctx, newSealedSecret("pay", list[0].Name, []byte("w")), limit, nil); err != nil {
		t.Errorf("replace at the limit: %v", err)
	}
}

func testDeleteSecret(t *testing.T, s SecretStore) {
	ctx := t.Context()
	mustPutSecret(t, ctx, s, newSealedSecret("pay", "TOKEN", []byte("x")))
	mustPutSecret(t, ctx, s, newSealedSecret("search", "TOKEN", []byte("y")))
	audit := webhookAudit(domain.AuditSecretDelete, "pay")
	audit.Details = map[string]string{"project": "pay", "name": "TOKEN"}
	if err := s.DeleteSecret(ctx, "pay", "TOKEN", audit); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSecret(ctx, "pay", "TOKEN", audit); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("delete again: %v, want ENOTFOUND", err)
	}
	if list, _ := s.FindSecrets(ctx, "pay"); len(list) != 0 {
		t.Errorf("pay still has %v", list)
	}
	if list, _ := s.FindSecrets(ctx, "search"); len(list) != 1 {
		t.Errorf("search lost its secret: %v", list)
	}
	if diff := cmp.Diff([]string{domain.AuditSecretDelete + " TOKEN"}, secretAuditActions(t, ctx, s)); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
}

func testSecretKeyCheck(t *testing.T, s SecretStore) {
	ctx := t.Context()
	if _, err := s.SecretKeyCheck(ctx); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Fatalf("SecretKeyCheck on an empty store: %v, want ENOTFOUND", err)
	}
	got, err := s.InitSecretKeyCheck(ctx, []byte("first"))
	if err != nil || string(got) != "first" {
		t.Fatalf("InitSecretKeyCheck = %q, %v", got, err)
	}
	if got, err := s.InitSecretKeyCheck(ctx, []byte("second")); err != nil || string(got) != "first" {
		t.Errorf("InitSecretKeyCheck again = %q, %v; want the first kept", got, err)
	}
}

func testRewrapSecrets(t *testing.T, s SecretStore) {
	ctx := t.Context()
	mustPutSecret(t, ctx, s, newSealedSecret("pay", "A", []byte("old-a")))
	mustPutSecret(t, ctx, s, newSealedSecret("search", "B", []byte("old-b")))
	if _, err := s.InitSecretKeyCheck(ctx, []byte("old-check")); err != nil {
		t.Fatal(err)
	}

	// A failure part way saves nothing.
	boom := errors.New("boom")
	calls := 0
	_, err := s.RewrapSecrets(ctx, func([]byte, []byte) ([]byte, error) {
		calls++
		if calls == 2 {
			return nil, boom
		}
		return []byte("half"), nil
	}, []byte("new-check"))
	if !errors.Is(err, boom) {
		t.Fatalf("RewrapSecrets failing: %v, want boom", err)
	}
	assertSealed(t, ctx, s, "pay", "old-a")
	if check, _ := s.SecretKeyCheck(ctx); string(check) != "old-check" {
		t.Errorf("key check %q after a failed rewrap", check)
	}

	n, err := s.RewrapSecrets(ctx, func(sealed, ad []byte) ([]byte, error) {
		if want := domain.SecretAD("pay", "A"); string(sealed) == "old-a" && string(ad) != string(want) {
			t.Errorf("rewrap of pay/A given associated data %q, want %q", ad, want)
		}
		return append([]byte("new-"), sealed...), nil
	}, []byte("new-check"))
	if err != nil || n != 2 {
		t.Fatalf("RewrapSecrets = %d, %v; want 2", n, err)
	}
	assertSealed(t, ctx, s, "pay", "new-old-a")
	assertSealed(t, ctx, s, "search", "new-old-b")
	if check, _ := s.SecretKeyCheck(ctx); string(check) != "new-check" {
		t.Errorf("key check %q, want new-check", check)
	}
}

func assertSealed(tb testing.TB, ctx context.Context, s SecretStore, project, want string) {
	tb.Helper()
	sealed, err := s.FindSealedSecrets(ctx, project)
	if err != nil || len(sealed) != 1 {
		tb.Fatalf("FindSealedSecrets(%s) = %v, %v", project, sealed, err)
	}
	if got := string(sealed[0].Sealed); got != want {
		tb.Errorf("%s's secret is sealed as %q, want %q", project, got, want)
	}
}
