package domain

import (
	"context"
	"strings"
	"testing"
	"time"
)

// guarded authenticates token as a connection would and returns its
// guarded context.
func guarded(t *testing.T, s *APIKeyService, token string) context.Context {
	t.Helper()
	c := &Caller{Addr: clientAddr}
	if err := s.AuthenticateCaller(t.Context(), c, token); err != nil {
		t.Fatalf("AuthenticateCaller: %v", err)
	}
	return s.Guard(NewContextWithCaller(t.Context(), c))
}

// wantEnded fails unless ctx ended with a cause of code whose message
// contains text.
func wantEnded(t *testing.T, ctx context.Context, code, text string) {
	t.Helper()
	select {
	case <-ctx.Done():
	default:
		t.Fatalf("the guarded context is still open; want it ended with %s", code)
	}
	err := context.Cause(ctx)
	if ErrorCode(err) != code || !strings.Contains(ErrorMessage(err), text) {
		t.Fatalf("ended with %v (code %q); want code %q and a message with %q", err, ErrorCode(err), code, text)
	}
}

func wantOpen(t *testing.T, ctx context.Context) {
	t.Helper()
	if ctx.Err() != nil {
		t.Fatalf("the guarded context ended: %v", context.Cause(ctx))
	}
}

// changeElsewhere changes a key in the store as another process would,
// without this service hearing of it.
func changeElsewhere(t *testing.T, repo *keyRepo, id string, change func(*APIKey)) {
	t.Helper()
	if _, err := repo.UpdateAPIKey(t.Context(), id, func(k *APIKey) error { change(k); return nil }, nil); err != nil {
		t.Fatal(err)
	}
}

func TestAPIKeyService_Guard(t *testing.T) {
	t.Run("Revoked", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}})
		ctx := guarded(t, s, token)
		wantOpen(t, ctx)
		if _, _, err := s.Revoke(operatorContext(t), k.ID); err != nil {
			t.Fatal(err)
		}
		wantEnded(t, ctx, EUNAUTHENTICATED, "revoked")
		if n := s.watched(); n != 0 {
			t.Errorf("%d keys still watched after the only watch ended", n)
		}
	})

	t.Run("ParentRevoked", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		parent, _ := mustCreateKey(t, s, CreateAPIKey{Name: "parent", Scopes: []string{"keys:write", "commands:read"}})
		_, token, err := s.Create(keyContext(t, parent), CreateAPIKey{Name: "child", Scopes: []string{"commands:read"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx := guarded(t, s, token)
		if _, _, err := s.Revoke(operatorContext(t), parent.ID); err != nil {
			t.Fatal(err)
		}
		wantEnded(t, ctx, EUNAUTHENTICATED, "revoked")
	})

	t.Run("RevokedBeforeGuard", func(t *testing.T) {
		// A stream authenticated just before its key is revoked here, and
		// guarded just after: the revocation found no watch to end, so
		// Guard must not trust the key the caller was authenticated with.
		s, _, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "sse", Scopes: []string{"commands:read"}})
		c := &Caller{Addr: clientAddr}
		if err := s.AuthenticateCaller(t.Context(), c, token); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Revoke(operatorContext(t), k.ID); err != nil {
			t.Fatal(err)
		}
		ctx := s.Guard(NewContextWithCaller(t.Context(), c))
		wantEnded(t, ctx, EUNAUTHENTICATED, "revoked")
	})

	t.Run("RotatedAtOnce", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}})
		ctx := guarded(t, s, token)
		_, fresh, err := s.Rotate(operatorContext(t), k.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		wantEnded(t, ctx, EUNAUTHENTICATED, "rotated")
		// A connection made with the new secret is not affected.
		wantOpen(t, guarded(t, s, fresh))
	})

	t.Run("RotatedWithGrace", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}})
		old := guarded(t, s, token)
		_, fresh, err := s.Rotate(operatorContext(t), k.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		renewed := guarded(t, s, fresh)
		clk.Advance(time.Hour - time.Second)
		s.syncKeys(t.Context())
		wantOpen(t, old)
		clk.Advance(time.Second)
		s.syncKeys(t.Context())
		wantEnded(t, old, EUNAUTHENTICATED, "rotated")
		wantOpen(t, renewed)
	})

	t.Run("Expired", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		_, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}, ExpiresAt: new(clk.Now().Add(time.Minute))})
		ctx := guarded(t, s, token)
		s.syncKeys(t.Context())
		wantOpen(t, ctx)
		clk.Advance(time.Minute)
		s.syncKeys(t.Context())
		wantEnded(t, ctx, EUNAUTHENTICATED, "expired")
	})

	t.Run("RevokedElsewhere", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}})
		ctx := guarded(t, s, token)
		changeElsewhere(t, repo, k.ID, func(k *APIKey) { k.RevokedAt = new(clk.Now()) })
		wantOpen(t, ctx) // nothing told this process yet
		s.syncKeys(t.Context())
		wantEnded(t, ctx, EUNAUTHENTICATED, "revoked")
	})

	t.Run("DeletedElsewhere", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}})
		ctx := guarded(t, s, token)
		repo.set(func(r *keyRepo) { delete(r.keys, k.ID) })
		s.syncKeys(t.Context())
		wantEnded(t, ctx, EUNAUTHENTICATED, "no longer exists")
	})

	t.Run("Narrowed", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read", "projects:read"}})
		ctx := guarded(t, s, token)
		changeElsewhere(t, repo, k.ID, func(k *APIKey) { k.Name = "renamed" })
		s.syncKeys(t.Context())
		wantOpen(t, ctx) // a change that takes nothing away keeps it
		changeElsewhere(t, repo, k.ID, func(k *APIKey) { k.Scopes = Scopes{ScopeProjectsRead} })
		s.syncKeys(t.Context())
		wantEnded(t, ctx, EFORBIDDEN, "scope")
	})

	t.Run("ProjectsNarrowed", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}, Projects: []string{"web", "api"}})
		ctx := guarded(t, s, token)
		narrower, err := NewProjectScope([]string{"web"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		changeElsewhere(t, repo, k.ID, func(k *APIKey) { k.Projects = narrower })
		s.syncKeys(t.Context())
		wantEnded(t, ctx, EFORBIDDEN, "project")
	})

	t.Run("AddressNoLongerAllowed", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}})
		ctx := guarded(t, s, token)
		cidrs, err := ParseCIDRs([]string{"198.51.100.0/24"})
		if err != nil {
			t.Fatal(err)
		}
		changeElsewhere(t, repo, k.ID, func(k *APIKey) { k.AllowedCIDRs = cidrs })
		s.syncKeys(t.Context())
		wantEnded(t, ctx, EFORBIDDEN, clientAddr.String())
	})

	t.Run("StoreDown", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		_, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}})
		ctx := guarded(t, s, token)
		repo.set(func(r *keyRepo) { r.findErr = Errorf(EUNAVAILABLE, "the database is unavailable") })
		s.syncKeys(t.Context())
		wantOpen(t, ctx) // an outage is not a revocation
		// But requests no longer trust what they cannot confirm.
		clk.Advance(AuthStaleness)
		_, err := s.Authenticate(t.Context(), token, clientAddr)
		wantCode(t, err, EUNAVAILABLE)
	})

	t.Run("Released", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		_, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}})
		parent, cancel := context.WithCancel(t.Context())
		c := &Caller{Addr: clientAddr}
		if err := s.AuthenticateCaller(parent, c, token); err != nil {
			t.Fatal(err)
		}
		ctx := s.Guard(NewContextWithCaller(parent, c))
		cancel()
		<-ctx.Done()
		waitFor(t, "the watch to be released", func() bool { return s.watched() == 0 })
	})

	t.Run("OperatorAndAnonymous", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		for _, c := range []*Caller{{Operator: true}, {}} {
			ctx := s.Guard(NewContextWithCaller(t.Context(), c))
			if !Guarded(ctx) || ctx.Err() != nil {
				t.Errorf("Guard(%+v): guarded %v, err %v", c, Guarded(ctx), ctx.Err())
			}
		}
	})
}

func TestAPIKeyService_AuthCache(t *testing.T) {
	t.Run("HitReadsNothing", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		_, token := mustCreateKey(t, s, CreateAPIKey{Name: "api", Scopes: []string{"projects:read"}})
		for range 3 {
			if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
				t.Fatal(err)
			}
		}
		if repo.finds != 1 {
			t.Errorf("3 authentications read the store %d times; want 1", repo.finds)
		}
	})

	t.Run("RevokedHereAtOnce", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "api", Scopes: []string{"projects:read"}})
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Revoke(operatorContext(t), k.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.Authenticate(t.Context(), token, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("ChangedElsewhere", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "api", Scopes: []string{"projects:read"}})
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatal(err)
		}
		changeElsewhere(t, repo, k.ID, func(k *APIKey) { k.RevokedAt = new(clk.Now()) })
		// Found by the next read of versions…
		s.syncKeys(t.Context())
		_, err := s.Authenticate(t.Context(), token, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("StaleIsReadAgain", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "api", Scopes: []string{"projects:read"}})
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatal(err)
		}
		changeElsewhere(t, repo, k.ID, func(k *APIKey) { k.RevokedAt = new(clk.Now()) })
		// …or, when versions are not being read, once the cached key is
		// AuthStaleness old.
		clk.Advance(AuthStaleness - time.Millisecond)
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatalf("within AuthStaleness: %v", err)
		}
		clk.Advance(time.Millisecond)
		_, err := s.Authenticate(t.Context(), token, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("ConfirmedStaysCached", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		_, token := mustCreateKey(t, s, CreateAPIKey{Name: "api", Scopes: []string{"projects:read"}})
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			clk.Advance(time.Second)
			s.syncKeys(t.Context())
			if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
				t.Fatal(err)
			}
		}
		if repo.finds != 1 {
			t.Errorf("a key confirmed every second was read %d times; want 1", repo.finds)
		}
	})

	t.Run("WrongSecretOfCachedKey", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "api", Scopes: []string{"projects:read"}})
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatal(err)
		}
		forged, _ := newToken(k.ID)
		_, err := s.Authenticate(t.Context(), forged, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("GraceEndsWhileCached", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "api", Scopes: []string{"projects:read"}})
		if _, _, err := s.Rotate(operatorContext(t), k.ID, time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatalf("old secret within its grace: %v", err)
		}
		clk.Advance(time.Minute)
		s.syncKeys(t.Context())
		_, err := s.Authenticate(t.Context(), token, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
	})
}

// TestAPIKeyService_FollowKeyChanges: a change another process broadcast
// (relayed to the hub) reaches this process's watches at once, without
// waiting for the next read of versions.
func TestAPIKeyService_FollowKeyChanges(t *testing.T) {
	repo, clk, hub := newKeyRepo(), newClock(), newFakeHub()
	s := NewAPIKeyService(repo, nil, hub, nil)
	s.now = clk.Now
	s.pollEvery = time.Hour // only the event can end it
	k, token := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"commands:read"}})
	ctx := guarded(t, s, token)

	follow, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.FollowKeyChanges(follow)
	}()
	t.Cleanup(func() { stop(); <-done })
	waitFor(t, "FollowKeyChanges to subscribe", func() bool { return hub.subscribers(KeysTopic) == 1 })

	changeElsewhere(t, repo, k.ID, func(k *APIKey) { k.RevokedAt = new(clk.Now()) })
	hub.Publish(KeysTopic, Event{Kind: EventKey, KeyID: k.ID})
	waitFor(t, "the key event to end the guarded context", func() bool { return ctx.Err() != nil })
	wantEnded(t, ctx, EUNAUTHENTICATED, "revoked")
}

// watched counts the keys s watches.
func (s *APIKeyService) watched() int {
	s.guards.mu.Lock()
	defer s.guards.mu.Unlock()
	return len(s.guards.byKey)
}

func TestAPIKeyService_AuthStats(t *testing.T) {
	s, _, _ := newTestKeyService()
	_, token := mustCreateKey(t, s, CreateAPIKey{Name: "api", Scopes: []string{"projects:read"}})
	for range 3 {
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatal(err)
		}
	}
	parent, cancel := context.WithCancel(t.Context())
	defer cancel()
	c := &Caller{Addr: clientAddr}
	if err := s.AuthenticateCaller(parent, c, token); err != nil {
		t.Fatal(err)
	}
	s.Guard(NewContextWithCaller(parent, c))
	want := AuthStats{CacheHits: 3, CacheMisses: 1, CachedCredentials: 1, Guarded: 1}
	if got := s.AuthStats(); got != want {
		t.Errorf("AuthStats = %+v, want %+v", got, want)
	}
	cancel()
	waitFor(t, "the guard to be released", func() bool { return s.AuthStats().Guarded == 0 })
}
