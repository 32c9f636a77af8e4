package storetest

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// TestAPIKeyRepository runs the domain.APIKeyRepository contract. newRepo is
// called once per subtest and must return an empty repository that no other
// subtest uses; subtests run in parallel.
func TestAPIKeyRepository(t *testing.T, newRepo func(t *testing.T) domain.APIKeyRepository) {
	t.Run("CreateAPIKey", func(t *testing.T) {
		t.Parallel()
		testCreateAPIKey(t, newRepo)
	})
	t.Run("FindAPIKeyByID", func(t *testing.T) {
		t.Parallel()
		testFindAPIKeyByID(t, newRepo)
	})
	t.Run("FindAPIKeys", func(t *testing.T) {
		t.Parallel()
		testFindAPIKeys(t, newRepo)
	})
	t.Run("UpdateAPIKey", func(t *testing.T) {
		t.Parallel()
		testUpdateAPIKey(t, newRepo)
	})
	t.Run("TouchAPIKeys", func(t *testing.T) {
		t.Parallel()
		testTouchAPIKeys(t, newRepo)
	})
	t.Run("APIKeyVersions", func(t *testing.T) {
		t.Parallel()
		testAPIKeyVersions(t, newRepo)
	})
	t.Run("RevokeAPIKeyTree", func(t *testing.T) {
		t.Parallel()
		testRevokeAPIKeyTree(t, newRepo)
	})
	t.Run("CreateAPIKeyByRevoked", func(t *testing.T) {
		testCreateAPIKeyByRevoked(t, newRepo)
	})
}

func testCreateAPIKey(t *testing.T, newRepo func(t *testing.T) domain.APIKeyRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		k := fullAPIKey()
		want := cloneAPIKey(k)
		want.Version = 1
		mustCreateAPIKey(t, ctx, repo, k)
		if diff := cmp.Diff(want, k, cmpOpts...); diff != "" {
			t.Errorf("CreateAPIKey changed its argument other than setting Version 1 (-want +after):\n%s", diff)
		}
		got := mustFindAPIKey(t, ctx, repo, k.ID)
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("stored key differs (-created +found):\n%s", diff)
		}
		assertAPIKeyUTC(t, got)
	})

	t.Run("Minimal", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		k := newAPIKey() // no optional times, CIDRs, creator or rate limit
		mustCreateAPIKey(t, ctx, repo, k)
		got := mustFindAPIKey(t, ctx, repo, k.ID)
		if diff := cmp.Diff(k, got, cmpOpts...); diff != "" {
			t.Errorf("stored key differs (-created +found):\n%s", diff)
		}
		if got.ExpiresAt != nil || got.RevokedAt != nil || got.LastUsedAt != nil || got.PreviousSecretExpiresAt != nil {
			t.Errorf("unset times came back set: %+v", got)
		}
		assertAPIKeyUTC(t, got)
	})

	t.Run("ErrConflict", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		k := newAPIKey()
		mustCreateAPIKey(t, ctx, repo, k)

		dup := fullAPIKey()
		dup.ID = k.ID
		err := repo.CreateAPIKey(ctx, dup, nil)
		if code := domain.ErrorCode(err); code != domain.ECONFLICT {
			t.Fatalf("CreateAPIKey(duplicate ID) = %v (code %q), want code %q", err, code, domain.ECONFLICT)
		}
		// The first key is untouched, CIDRs included.
		got := mustFindAPIKey(t, ctx, repo, k.ID)
		if diff := cmp.Diff(k, got, cmpOpts...); diff != "" {
			t.Errorf("a failed create changed the existing key (-want +got):\n%s", diff)
		}
	})
}

func testFindAPIKeyByID(t *testing.T, newRepo func(t *testing.T) domain.APIKeyRepository) {
	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateAPIKey(t, ctx, repo, newAPIKey())
		_, err := repo.FindAPIKeyByID(ctx, domain.NewID(time.Now()))
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("FindAPIKeyByID(unknown) = %v (code %q), want code %q", err, code, domain.ENOTFOUND)
		}
	})
}

func testFindAPIKeys(t *testing.T, newRepo func(t *testing.T) domain.APIKeyRepository) {
	// mustCreateMany creates n keys, in an order unrelated to their IDs, and
	// returns them sorted by ID.
	mustCreateMany := func(t *testing.T, repo domain.APIKeyRepository, n int) []*domain.APIKey {
		t.Helper()
		var keys []*domain.APIKey
		base := time.Now()
		for i := range n {
			// IDs start with a millisecond timestamp: give each key its own
			// millisecond, in an order that is not the insertion order.
			k := newAPIKey()
			k.ID = idAt(base.Add(time.Duration((i*3)%n) * time.Millisecond))
			k.AllowedCIDRs = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 32)}
			mustCreateAPIKey(t, t.Context(), repo, k)
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b *domain.APIKey) int { return strings.Compare(a.ID, b.ID) })
		return keys
	}

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		want := mustCreateMany(t, repo, 7)
		got, err := repo.FindAPIKeys(ctx, domain.APIKeyFilter{})
		if err != nil {
			t.Fatalf("FindAPIKeys: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("FindAPIKeys() (-want +got):\n%s", diff)
		}
		for _, k := range got {
			assertAPIKeyUTC(t, k)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		got, err := repo.FindAPIKeys(ctx, domain.APIKeyFilter{Limit: 10})
		if err != nil || len(got) != 0 {
			t.Fatalf("FindAPIKeys(empty store) = %v, %v; want no keys, no error", got, err)
		}
	})

	t.Run("Paging", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		all := mustCreateMany(t, repo, 7) // 7 is prime to 3: distinct milliseconds
		tests := []struct {
			name string
			f    domain.APIKeyFilter
			want []*domain.APIKey
		}{
			{"Limit", domain.APIKeyFilter{Limit: 3}, all[:3]},
			{"LimitAboveCount", domain.APIKeyFilter{Limit: 100}, all},
			{"AfterID", domain.APIKeyFilter{AfterID: all[2].ID}, all[3:]},
			{"AfterIDAndLimit", domain.APIKeyFilter{AfterID: all[2].ID, Limit: 2}, all[3:5]},
			{"AfterLast", domain.APIKeyFilter{AfterID: all[6].ID}, nil},
			// AfterID need not name a stored key: it is a position.
			{"AfterUnknownID", domain.APIKeyFilter{AfterID: all[4].ID[:10]}, all[4:]},
			{"AfterBeforeAll", domain.APIKeyFilter{AfterID: "0"}, all},
		}
		for _, tt := range tests {
			got, err := repo.FindAPIKeys(ctx, tt.f)
			if err != nil {
				t.Errorf("%s: FindAPIKeys(%+v): %v", tt.name, tt.f, err)
				continue
			}
			if diff := cmp.Diff(ids(tt.want), ids(got)); diff != "" {
				t.Errorf("%s: FindAPIKeys(%+v) IDs (-want +got):\n%s", tt.name, tt.f, diff)
			}
		}
	})

	t.Run("CreatedBy", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		kt := newAPIKeyTree(t, repo) // root → a, b; a → a1; u
		for _, tt := range []struct {
			name string
			f    domain.APIKeyFilter
			want []*domain.APIKey
		}{
			{"Children", domain.APIKeyFilter{CreatedBy: kt.root.ID}, []*domain.APIKey{kt.a, kt.b}},
			{"NotGrandchildren", domain.APIKeyFilter{CreatedBy: kt.a.ID}, []*domain.APIKey{kt.a1}},
			{"Leaf", domain.APIKeyFilter{CreatedBy: kt.u.ID}, nil},
			{"WithPaging", domain.APIKeyFilter{CreatedBy: kt.root.ID, AfterID: kt.a.ID, Limit: 1}, []*domain.APIKey{kt.b}},
		} {
			got, err := repo.FindAPIKeys(ctx, tt.f)
			if err != nil {
				t.Errorf("%s: FindAPIKeys(%+v): %v", tt.name, tt.f, err)
				continue
			}
			if diff := cmp.Diff(ids(tt.want), ids(got)); diff != "" {
				t.Errorf("%s: FindAPIKeys(%+v) IDs (-want +got):\n%s", tt.name, tt.f, diff)
			}
		}
	})
}

func testUpdateAPIKey(t *testing.T, newRepo func(t *testing.T) domain.APIKeyRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		k := fullAPIKey()
		mustCreateAPIKey(t, ctx, repo, k)
		other := newAPIKey()
		mustCreateAPIKey(t, ctx, repo, other)

		now := time.Now()
		want := cloneAPIKey(k)
		want.Name = "renamed"
		want.Scopes = domain.Scopes{domain.ScopeAdmin}
		want.PreviousSecretHash, want.SecretHash = k.SecretHash, randomHash()
		want.PreviousSecretExpiresAt = ptr(at(now.Add(time.Hour)))
		want.AllowedCIDRs = []netip.Prefix{netip.MustParsePrefix("2001:db8:1::/48"), netip.MustParsePrefix("172.16.0.0/12")}
		want.RateLimit = 7
		want.ExpiresAt = nil
		want.RevokedAt = ptr(at(now))
		want.Version = 7 // the update's own change is ignored: the store counts

		got, err := repo.UpdateAPIKey(ctx, want.ID, func(loaded *domain.APIKey) error {
			if diff := cmp.Diff(k, loaded, cmpOpts...); diff != "" {
				t.Errorf("update was handed (-stored +handed):\n%s", diff)
			}
			*loaded = *cloneAPIKey(want)
			return nil
		}, nil)
		if err != nil {
			t.Fatalf("UpdateAPIKey: %v", err)
		}
		want.Version = 2
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("UpdateAPIKey returned (-want +got):\n%s", diff)
		}
		assertAPIKeyUTC(t, got)
		if diff := cmp.Diff(want, mustFindAPIKey(t, ctx, repo, k.ID), cmpOpts...); diff != "" {
			t.Errorf("stored after update (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(other, mustFindAPIKey(t, ctx, repo, other.ID), cmpOpts...); diff != "" {
			t.Errorf("another key changed (-want +got):\n%s", diff)
		}
	})

	t.Run("ClearCIDRs", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		k := fullAPIKey()
		mustCreateAPIKey(t, ctx, repo, k)
		if _, err := repo.UpdateAPIKey(ctx, k.ID, func(k *domain.APIKey) error {
			k.AllowedCIDRs = nil
			return nil
		}, nil); err != nil {
			t.Fatalf("UpdateAPIKey: %v", err)
		}
		if got := mustFindAPIKey(t, ctx, repo, k.ID); len(got.AllowedCIDRs) != 0 {
			t.Errorf("AllowedCIDRs = %v after clearing them, want none", got.AllowedCIDRs)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateAPIKey(t, ctx, repo, newAPIKey())
		called := false
		_, err := repo.UpdateAPIKey(ctx, domain.NewID(time.Now()), func(*domain.APIKey) error {
			called = true
			return nil
		}, nil)
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("UpdateAPIKey(unknown) = %v (code %q), want code %q", err, code, domain.ENOTFOUND)
		}
		if called {
			t.Error("update was called for a key that does not exist")
		}
	})

	t.Run("ErrUpdate", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		k := fullAPIKey()
		mustCreateAPIKey(t, ctx, repo, k)
		want := domain.Errorf(domain.EFORBIDDEN, "no")
		got, err := repo.UpdateAPIKey(ctx, k.ID, func(k *domain.APIKey) error {
			// Change everything, then refuse: nothing may be saved.
			k.Name, k.RateLimit, k.AllowedCIDRs = "changed", 99, nil
			k.RevokedAt = ptr(time.Now())
			return want
		}, nil)
		if err != want { //nolint:errorlint // the very same error must come back.
			t.Fatalf("UpdateAPIKey = %#v, want update's error %#v unchanged", err, want)
		}
		if got != nil {
			t.Errorf("UpdateAPIKey returned key %+v along with an error", got)
		}
		if diff := cmp.Diff(k, mustFindAPIKey(t, ctx, repo, k.ID), cmpOpts...); diff != "" {
			t.Errorf("a failed update changed the key (-want +got):\n%s", diff)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		k := newAPIKey()
		mustCreateAPIKey(t, ctx, repo, k)

		const n = 20
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, err := repo.UpdateAPIKey(ctx, k.ID, func(k *domain.APIKey) error {
					k.RateLimit++
					k.AllowedCIDRs = append(k.AllowedCIDRs, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i), 0}), 24))
					return nil
				}, nil)
				if err != nil {
					t.Errorf("UpdateAPIKey #%d: %v", i, err)
				}
			})
		}
		wg.Wait()
		got := mustFindAPIKey(t, ctx, repo, k.ID)
		if got.RateLimit != n || len(got.AllowedCIDRs) != n || got.Version != n+1 {
			t.Errorf("after %d concurrent updates: RateLimit = %d, %d CIDRs, version %d; want %d, %d and %d (updates were lost)",
				n, got.RateLimit, len(got.AllowedCIDRs), got.Version, n, n, n+1)
		}
	})
}

func testAPIKeyVersions(t *testing.T, newRepo func(t *testing.T) domain.APIKeyRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		changed, same := newAPIKey(), newAPIKey()
		mustCreateAPIKey(t, ctx, repo, changed)
		mustCreateAPIKey(t, ctx, repo, same)
		for range 2 {
			if _, err := repo.UpdateAPIKey(ctx, changed.ID, func(k *domain.APIKey) error {
				k.Name += "+"
				return nil
			}, nil); err != nil {
				t.Fatalf("UpdateAPIKey: %v", err)
			}
		}
		// Use is not a change.
		if err := repo.TouchAPIKeys(ctx, map[string]time.Time{same.ID: time.Now()}); err != nil {
			t.Fatalf("TouchAPIKeys: %v", err)
		}
		missing := domain.NewID(time.Now())
		got, err := repo.APIKeyVersions(ctx, []string{changed.ID, same.ID, missing})
		if err != nil {
			t.Fatalf("APIKeyVersions: %v", err)
		}
		want := map[string]int64{changed.ID: 3, same.ID: 1}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("APIKeyVersions (-want +got):\n%s", diff)
		}
	})

	t.Run("Many", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		k := newAPIKey()
		mustCreateAPIKey(t, ctx, repo, k)
		// More IDs than one statement may bind on some drivers.
		ids := []string{k.ID}
		for range 1200 {
			ids = append(ids, domain.NewID(time.Now()))
		}
		got, err := repo.APIKeyVersions(ctx, ids)
		if err != nil {
			t.Fatalf("APIKeyVersions(%d IDs): %v", len(ids), err)
		}
		if diff := cmp.Diff(map[string]int64{k.ID: 1}, got); diff != "" {
			t.Errorf("APIKeyVersions (-want +got):\n%s", diff)
		}
	})
}

func testTouchAPIKeys(t *testing.T, newRepo func(t *testing.T) domain.APIKeyRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		base := time.Now().Add(-time.Hour)
		never, used := newAPIKey(), newAPIKey()
		used.LastUsedAt = ptr(at(base))
		mustCreateAPIKey(t, ctx, repo, never)
		mustCreateAPIKey(t, ctx, repo, used)

		// Nanoseconds and a non-UTC zone, as a clock gives them.
		t1 := base.Add(time.Minute + 1234*time.Nanosecond).In(elsewhere)
		if err := repo.TouchAPIKeys(ctx, map[string]time.Time{never.ID: t1, used.ID: t1}); err != nil {
			t.Fatalf("TouchAPIKeys: %v", err)
		}
		assertLastUsed(t, repo, never.ID, t1)
		assertLastUsed(t, repo, used.ID, t1)

		// An earlier time never moves it back; a later one moves it on.
		t2 := t1.Add(time.Second)
		if err := repo.TouchAPIKeys(ctx, map[string]time.Time{never.ID: base, used.ID: t2}); err != nil {
			t.Fatalf("TouchAPIKeys: %v", err)
		}
		assertLastUsed(t, repo, never.ID, t1)
		assertLastUsed(t, repo, used.ID, t2)

		// Nothing else changes.
		want := cloneAPIKey(used)
		want.LastUsedAt = ptr(t2.Truncate(time.Microsecond))
		if diff := cmp.Diff(want, mustFindAPIKey(t, ctx, repo, used.ID), cmpOpts...); diff != "" {
			t.Errorf("TouchAPIKeys changed more than LastUsedAt (-want +got):\n%s", diff)
		}
	})

	t.Run("UnknownID", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		k := newAPIKey()
		mustCreateAPIKey(t, ctx, repo, k)
		now := time.Now()
		err := repo.TouchAPIKeys(ctx, map[string]time.Time{domain.NewID(now): now, k.ID: now})
		if err != nil {
			t.Fatalf("TouchAPIKeys with an unknown ID: %v", err)
		}
		assertLastUsed(t, repo, k.ID, now)
		if _, err := repo.FindAPIKeyByID(ctx, domain.NewID(now)); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("TouchAPIKeys created a key: %v", err)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		if err := repo.TouchAPIKeys(ctx, nil); err != nil {
			t.Fatalf("TouchAPIKeys(nil): %v", err)
		}
	})
}

// newAPIKey returns a key with only the required fields set.
func newAPIKey() *domain.APIKey {
	now := time.Now()
	return &domain.APIKey{
		ID:         domain.NewID(now),
		Name:       "test key",
		Scopes:     domain.Scopes{domain.ScopeProjectsRead},
		SecretHash: randomHash(),
		CreatedAt:  at(now),
	}
}

// fullAPIKey returns a key with every field set.
func fullAPIKey() *domain.APIKey {
	now := time.Now()
	k := newAPIKey()
	k.Name = "full ünïcode key 'quoted'"
	k.Scopes = domain.Scopes{domain.ScopeCommandsRead, domain.ScopeCommandsWrite, domain.ScopeKeysRead}
	k.PreviousSecretHash = randomHash()
	k.PreviousSecretExpiresAt = ptr(at(now.Add(10 * time.Minute)))
	k.AllowedCIDRs = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.0.2.7/32"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("::1/128"),
		netip.MustParsePrefix("0.0.0.0/0"),
	}
	k.RateLimit = 250
	k.CreatedBy = domain.NewID(now.Add(-time.Hour))
	k.ExpiresAt = ptr(at(now.Add(24 * time.Hour)))
	k.RevokedAt = ptr(at(now.Add(time.Second)))
	k.LastUsedAt = ptr(at(now.Add(-time.Minute)))
	k.Projects = mustProjectScope([]string{"api", "web-2"}, []string{"team=payments,tier!=prod", "env in (dev,staging)", "!frozen"})
	return k
}

func mustProjectScope(names, selectors []string) domain.ProjectScope {
	s, err := domain.NewProjectScope(names, selectors)
	if err != nil {
		panic(err)
	}
	return s
}

func cloneAPIKey(k *domain.APIKey) *domain.APIKey {
	c := *k
	c.Scopes = slices.Clone(k.Scopes)
	c.AllowedCIDRs = slices.Clone(k.AllowedCIDRs)
	for _, p := range []**time.Time{&c.PreviousSecretExpiresAt, &c.ExpiresAt, &c.RevokedAt, &c.LastUsedAt} {
		if *p != nil {
			*p = ptr(**p)
		}
	}
	return &c
}

func mustCreateAPIKey(tb testing.TB, ctx context.Context, repo domain.APIKeyRepository, k *domain.APIKey) {
	tb.Helper()
	if err := repo.CreateAPIKey(ctx, k, nil); err != nil {
		tb.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
	}
}

func mustFindAPIKey(tb testing.TB, ctx context.Context, repo domain.APIKeyRepository, id string) *domain.APIKey {
	tb.Helper()
	k, err := repo.FindAPIKeyByID(ctx, id)
	if err != nil {
		tb.Fatalf("FindAPIKeyByID(%s): %v", id, err)
	}
	return k
}

func assertLastUsed(tb testing.TB, repo domain.APIKeyRepository, id string, want time.Time) {
	tb.Helper()
	k, err := repo.FindAPIKeyByID(tb.Context(), id)
	if err != nil {
		tb.Fatalf("FindAPIKeyByID(%s): %v", id, err)
	}
	want = want.Truncate(time.Microsecond) // the precision stores keep
	if k.LastUsedAt == nil || !k.LastUsedAt.Equal(want) {
		tb.Errorf("key %s: LastUsedAt = %v, want %v", id, k.LastUsedAt, want)
	}
	assertAPIKeyUTC(tb, k)
}

func assertAPIKeyUTC(tb testing.TB, k *domain.APIKey) {
	tb.Helper()
	assertUTC(tb, "API key "+k.ID, &k.CreatedAt, k.PreviousSecretExpiresAt, k.ExpiresAt, k.RevokedAt, k.LastUsedAt)
}

func ids(keys []*domain.APIKey) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k.ID)
	}
	return out
}
