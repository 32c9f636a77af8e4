package storetest

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// apiKeyTree is root → a, b; a → a1; and u, a key outside the tree.
type apiKeyTree struct {
	root, a, b, a1, u *domain.APIKey
}

// newAPIKeyTree stores an apiKeyTree whose IDs sort in creation order.
func newAPIKeyTree(tb testing.TB, repo domain.APIKeyRepository) apiKeyTree {
	tb.Helper()
	base := time.Now()
	key := func(i int, createdBy string) *domain.APIKey {
		k := newAPIKey()
		k.ID, k.CreatedBy = idAt(base.Add(time.Duration(i)*time.Millisecond)), createdBy
		mustCreateAPIKey(tb, tb.Context(), repo, k)
		return k
	}
	var kt apiKeyTree
	kt.root = key(0, "")
	kt.a = key(1, kt.root.ID)
	kt.b = key(2, kt.root.ID)
	kt.a1 = key(3, kt.a.ID)
	kt.u = key(4, "")
	return kt
}

func testRevokeAPIKeyTree(t *testing.T, newRepo func(t *testing.T) domain.APIKeyRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		kt := newAPIKeyTree(t, repo)
		revokedAt := at(time.Now().Add(time.Minute))
		var audited []string
		root, revoked, err := repo.RevokeAPIKeyTree(ctx, kt.root.ID, revokedAt, func(k *domain.APIKey) error {
			if diff := cmp.Diff(kt.root, k, cmpOpts...); diff != "" {
				t.Errorf("check was handed (-stored +handed):\n%s", diff)
			}
			return nil
		}, func(root *domain.APIKey, revoked []*domain.APIKey) []*domain.AuditEntry {
			audited = append([]string{root.ID}, ids(revoked)...)
			var entries []*domain.AuditEntry
			for _, id := range audited {
				entries = append(entries, &domain.AuditEntry{At: at(time.Now()), Action: domain.AuditKeyRevoke, Target: id, Outcome: domain.AuditSuccess})
			}
			return append(entries, nil) // nil entries are skipped
		})
		if err != nil {
			t.Fatalf("RevokeAPIKeyTree: %v", err)
		}
		wantIDs := []string{kt.a.ID, kt.b.ID, kt.a1.ID} // parents before children
		if diff := cmp.Diff(wantIDs, ids(revoked)); diff != "" {
			t.Errorf("revoked descendants (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(append([]string{kt.root.ID}, wantIDs...), audited); diff != "" {
			t.Errorf("audit was handed (-want +got):\n%s", diff)
		}
		for _, k := range append([]*domain.APIKey{root}, revoked...) {
			if k.RevokedAt == nil || !k.RevokedAt.Equal(revokedAt) {
				t.Errorf("returned %s with RevokedAt %v, want %v", k.ID, k.RevokedAt, revokedAt)
			}
			assertAPIKeyUTC(t, k)
		}
		for _, k := range []*domain.APIKey{kt.root, kt.a, kt.b, kt.a1} {
			want := cloneAPIKey(k)
			want.RevokedAt, want.Version = ptr(revokedAt), k.Version+1
			if diff := cmp.Diff(want, mustFindAPIKey(t, ctx, repo, k.ID), cmpOpts...); diff != "" {
				t.Errorf("stored %s (-want +got):\n%s", k.ID, diff)
			}
		}
		if diff := cmp.Diff(kt.u, mustFindAPIKey(t, ctx, repo, kt.u.ID), cmpOpts...); diff != "" {
			t.Errorf("a key outside the tree changed (-want +got):\n%s", diff)
		}
		if log, ok := repo.(domain.AuditRepository); ok {
			es, err := log.FindAuditEntries(ctx, domain.AuditFilter{Action: domain.AuditKeyRevoke})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range slices.Backward(es) {
				got = append(got, e.Target)
			}
			if diff := cmp.Diff(audited, got); diff != "" {
				t.Errorf("audit log's key.revoke targets (-want +got):\n%s", diff)
			}
		}
	})

	t.Run("RevokedKeysKeepTheirTime", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		kt := newAPIKeyTree(t, repo)
		earlier := at(time.Now())
		for _, k := range []*domain.APIKey{kt.root, kt.a} {
			if _, err := repo.UpdateAPIKey(ctx, k.ID, func(k *domain.APIKey) error { k.RevokedAt = ptr(earlier); return nil }, nil); err != nil {
				t.Fatal(err)
			}
		}
		later := at(time.Now().Add(time.Hour))
		root, revoked, err := repo.RevokeAPIKeyTree(ctx, kt.root.ID, later, func(*domain.APIKey) error { return nil }, noAudit)
		if err != nil {
			t.Fatalf("RevokeAPIKeyTree: %v", err)
		}
		if !root.RevokedAt.Equal(earlier) {
			t.Errorf("root RevokedAt = %v, want %v kept", root.RevokedAt, earlier)
		}
		if diff := cmp.Diff([]string{kt.b.ID, kt.a1.ID}, ids(revoked)); diff != "" {
			t.Errorf("revoked descendants (-want +got):\n%s", diff)
		}
		for id, want := range map[string]time.Time{kt.a.ID: earlier, kt.b.ID: later, kt.a1.ID: later} {
			if got := mustFindAPIKey(t, ctx, repo, id).RevokedAt; got == nil || !got.Equal(want) {
				t.Errorf("%s stored with RevokedAt %v, want %v", id, got, want)
			}
		}
		// Only the keys whose rows changed have new versions.
		versions, err := repo.APIKeyVersions(ctx, []string{kt.root.ID, kt.a.ID, kt.b.ID, kt.a1.ID})
		if err != nil {
			t.Fatal(err)
		}
		if want := map[string]int64{kt.root.ID: 2, kt.a.ID: 2, kt.b.ID: 2, kt.a1.ID: 2}; !cmp.Equal(want, versions) {
			t.Errorf("versions %v, want %v (root and a once, by their earlier revocation; b and a1 once, now)", versions, want)
		}
	})

	t.Run("ErrCheck", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		kt := newAPIKeyTree(t, repo)
		want := domain.Errorf(domain.EFORBIDDEN, "no")
		root, revoked, err := repo.RevokeAPIKeyTree(ctx, kt.root.ID, at(time.Now()), func(*domain.APIKey) error { return want },
			func(*domain.APIKey, []*domain.APIKey) []*domain.AuditEntry {
				t.Error("audit was called after check failed")
				return nil
			})
		if err != want { //nolint:errorlint // the very same error must come back.
			t.Fatalf("RevokeAPIKeyTree = %#v, want check's error %#v unchanged", err, want)
		}
		if root != nil || revoked != nil {
			t.Errorf("RevokeAPIKeyTree returned %+v, %+v along with an error", root, revoked)
		}
		for _, k := range []*domain.APIKey{kt.root, kt.a, kt.b, kt.a1} {
			if got := mustFindAPIKey(t, ctx, repo, k.ID); got.RevokedAt != nil {
				t.Errorf("%s was revoked although check failed", k.ID)
			}
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		_, _, err := repo.RevokeAPIKeyTree(ctx, domain.NewID(time.Now()), at(time.Now()), func(*domain.APIKey) error {
			t.Error("check was called for a key that does not exist")
			return nil
		}, noAudit)
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("RevokeAPIKeyTree(unknown) = %v (code %q), want %q", err, code, domain.ENOTFOUND)
		}
	})

	t.Run("ConcurrentCreate", func(t *testing.T) {
		// Keys that tree keys create while the tree is revoked are revoked
		// with it, or refused; none stays active, and once the revocation
		// has returned every creator is refused. Each creator keeps
		// creating until it is refused, or the revocation has returned
		// and its next attempt was refused (a store that is not fair to
		// the revocation may let many creates through first).
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		kt := newAPIKeyTree(t, repo)
		var mu sync.Mutex
		var created []*domain.APIKey
		var wg sync.WaitGroup
		var revoked atomic.Bool
		started := make(chan struct{}, 3)
		for _, creator := range []string{kt.a.ID, kt.a1.ID, kt.b.ID} {
			wg.Go(func() {
				sent := false
				defer func() {
					if !sent {
						started <- struct{}{}
					}
				}()
				for i := 0; ; i++ {
					after := revoked.Load() // the revocation returned before this attempt
					k := newAPIKey()
					k.CreatedBy = creator
					err := repo.CreateAPIKey(ctx, k, nil)
					if domain.ErrorCode(err) == domain.EUNAUTHENTICATED {
						return
					} else if err != nil {
						t.Errorf("CreateAPIKey by %s: %v", creator, err)
						return
					}
					if after {
						t.Errorf("%s created key %s after its tree's revocation returned", creator, k.ID)
						return
					}
					mu.Lock()
					created = append(created, k)
					mu.Unlock()
					if i == 0 {
						started <- struct{}{}
						sent = true
					}
				}
			})
		}
		for range 3 {
			<-started
		}
		if _, _, err := repo.RevokeAPIKeyTree(ctx, kt.root.ID, at(time.Now()), func(*domain.APIKey) error { return nil }, noAudit); err != nil {
			t.Errorf("RevokeAPIKeyTree: %v", err)
		}
		revoked.Store(true)
		wg.Wait()
		for _, k := range created {
			if mustFindAPIKey(t, ctx, repo, k.ID).RevokedAt == nil {
				t.Errorf("key %s, created by %s during the revocation, is still active", k.ID, k.CreatedBy)
			}
		}
	})
}

// testCreateAPIKeyByRevoked checks that a revoked key creates nothing.
func testCreateAPIKeyByRevoked(t *testing.T, newRepo func(t *testing.T) domain.APIKeyRepository) {
	t.Parallel()
	repo, ctx := newRepo(t), t.Context()
	kt := newAPIKeyTree(t, repo)
	if _, _, err := repo.RevokeAPIKeyTree(ctx, kt.a.ID, at(time.Now()), func(*domain.APIKey) error { return nil }, noAudit); err != nil {
		t.Fatal(err)
	}
	k := newAPIKey()
	k.CreatedBy = kt.a1.ID
	err := repo.CreateAPIKey(ctx, k, nil)
	if code := domain.ErrorCode(err); code != domain.EUNAUTHENTICATED {
		t.Fatalf("CreateAPIKey by a revoked key = %v (code %q), want %q", err, code, domain.EUNAUTHENTICATED)
	}
	if _, err := repo.FindAPIKeyByID(ctx, k.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("the key was stored anyway (find: %v)", err)
	}
}

func noAudit(*domain.APIKey, []*domain.APIKey) []*domain.AuditEntry { return nil }
