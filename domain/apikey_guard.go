package domain

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// KeysTopic is the hub topic of changes to API keys: EventKey events
// naming the key that changed.
const KeysTopic = "keys"

// keyWatch is one guarded context: a connection or stream authorized as a
// key, which ends when that key stops authorizing it.
type keyWatch struct {
	keyID      string
	secretHash string
	addr       netip.Addr
	scopes     Scopes
	projects   ProjectScope
	end        context.CancelCauseFunc

	// Set by the service, under guards.mu: the key as last judged.
	key *APIKey
	// deadline is when the key (or the secret the watch uses) runs out
	// by time alone; zero for never.
	deadline time.Time
}

// guards are the open watches, by key ID.
type guards struct {
	mu    sync.Mutex
	byKey map[string]map[*keyWatch]struct{}
}

type guardKey struct{}

// Guarded reports whether ctx is already guarded by Guard, so that a stream
// inside a guarded connection needs no guard of its own.
func Guarded(ctx context.Context) bool {
	return ctx.Value(guardKey{}) != nil
}

// Guard returns a context that ends when ctx does, or when the key of ctx's
// caller stops authorizing it: the key is revoked, expires, or is deleted;
// the secret the caller presented is rotated away (at once, or when its
// grace period ends); or its scopes, allowed networks or project scope no
// longer cover what the caller had. context.Cause then returns the reason:
// EUNAUTHENTICATED when the credential is no longer valid, EFORBIDDEN when
// its access narrowed. A change made by any process reaches the context
// within AuthStaleness while FollowKeyChanges runs. The watch is released
// when the context ends. An operator's or anonymous caller's context ends
// only with ctx.
func (s *APIKeyService) Guard(ctx context.Context) context.Context {
	ctx = context.WithValue(ctx, guardKey{}, struct{}{})
	c := CallerFromContext(ctx)
	if c == nil || c.Key == nil {
		return ctx
	}
	ctx, end := context.WithCancelCause(ctx)
	w := &keyWatch{keyID: c.Key.ID, secretHash: c.secretHash, addr: c.Addr, scopes: c.Key.Scopes, projects: c.Key.Projects, end: end}
	s.guards.mu.Lock()
	if s.guards.byKey[w.keyID] == nil {
		s.guards.byKey[w.keyID] = map[*keyWatch]struct{}{}
	}
	s.guards.byKey[w.keyID][w] = struct{}{}
	s.judgeLocked(w, c.Key, s.now())
	s.guards.mu.Unlock()
	if s.cache.changedSince(w.keyID, c.keyGen) {
		// The key changed after it authenticated the caller, and the
		// change may have come before the watch: judge it as stored.
		s.refreshKeys(ctx, w.keyID)
	}
	context.AfterFunc(ctx, func() {
		s.guards.mu.Lock()
		defer s.guards.mu.Unlock()
		s.unwatchLocked(w)
	})
	return ctx
}

// unwatchLocked forgets w. s.guards.mu is held.
func (s *APIKeyService) unwatchLocked(w *keyWatch) {
	delete(s.guards.byKey[w.keyID], w)
	if len(s.guards.byKey[w.keyID]) == 0 {
		delete(s.guards.byKey, w.keyID)
	}
}

// judgeLocked ends w if k (nil: deleted) no longer authorizes it at now,
// and otherwise remembers k's version and deadline. s.guards.mu is held.
func (s *APIKeyService) judgeLocked(w *keyWatch, k *APIKey, now time.Time) {
	if err := w.verdict(k, now); err != nil {
		w.end(err)
		s.unwatchLocked(w)
		return
	}
	w.key, w.deadline = k, k.deadline(w.secretHash)
}

// verdict returns why k (nil: deleted) no longer authorizes w at now, or
// nil.
func (w *keyWatch) verdict(k *APIKey, now time.Time) error {
	switch {
	case k == nil:
		return Errorf(EUNAUTHENTICATED, "API key %s no longer exists", w.keyID)
	case k.Status(now) == APIKeyRevoked:
		return Errorf(EUNAUTHENTICATED, "API key %s has been revoked", k.ID)
	case k.Status(now) == APIKeyExpired:
		return Errorf(EUNAUTHENTICATED, "API key %s has expired", k.ID)
	case !k.matchesHash(w.secretHash, now):
		return Errorf(EUNAUTHENTICATED, "API key %s has been rotated: the secret this connection presented is no longer valid", k.ID)
	case w.addr.IsValid() && !k.AllowsAddr(w.addr):
		return Errorf(EFORBIDDEN, "API key %s may no longer be used from %s", k.ID, w.addr)
	case !k.Scopes.Covers(w.scopes):
		return Errorf(EFORBIDDEN, "API key %s no longer holds every scope this connection was authorized with; connect again", k.ID)
	case w.projects.Within(k.Projects) != nil:
		return Errorf(EFORBIDDEN, "API key %s no longer reaches every project this connection was authorized for; connect again", k.ID)
	}
	return nil
}

// deadline returns when k stops authorizing the secret with hash
// secretHash by time alone: its expiry, or the end of the grace period of
// a rotated-away secret; zero for never.
func (k *APIKey) deadline(secretHash string) time.Time {
	var d time.Time
	if k.ExpiresAt != nil {
		d = *k.ExpiresAt
	}
	if secretHash != k.SecretHash && k.PreviousSecretExpiresAt != nil && (d.IsZero() || k.PreviousSecretExpiresAt.Before(d)) {
		d = *k.PreviousSecretExpiresAt
	}
	return d
}

// keysChanged tells this process's cache and watches, and through the
// broadcaster the other processes', that the keys ids changed. Other
// processes also find the change by reading versions (FollowKeyChanges)
// within AuthStaleness; the broadcast only makes it sooner.
func (s *APIKeyService) keysChanged(ctx context.Context, ids ...string) {
	ctx = context.WithoutCancel(ctx)
	s.refreshKeys(ctx, ids...)
	if s.bcast == nil {
		return
	}
	for _, id := range ids {
		_ = s.bcast.Broadcast(ctx, KeysTopic, Event{Kind: EventKey, KeyID: id})
	}
}

// FollowKeyChanges keeps this process's cached keys and guarded contexts
// current until ctx ends: it acts at once on key events that other
// processes broadcast (relayed to the hub's KeysTopic), reads
// the versions of the keys it holds every second (so that a change whose
// event was lost, or made by a process that sends none, such as the CLI on
// SQLite, arrives anyway), and ends guarded contexts whose key expires or
// whose secret's grace period ends. Run it on one goroutine per process.
func (s *APIKeyService) FollowKeyChanges(ctx context.Context) {
	var sub HubSubscription
	if s.hub != nil {
		sub = s.hub.Subscribe(KeysTopic, 256)
		defer func() { sub.Close() }()
	}
	tick := time.NewTicker(s.pollEvery)
	defer tick.Stop()
	for {
		var events <-chan Event
		if sub != nil {
			events = sub.Events()
		}
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				// Dropped for lagging: what was missed is found by reading
				// versions.
				sub = s.hub.Subscribe(KeysTopic, 256)
				s.syncKeys(ctx)
				continue
			}
			if e.Kind == EventKey {
				s.refreshKeys(ctx, e.KeyID)
			}
		case <-tick.C:
			s.syncKeys(ctx)
		}
	}
}

// syncKeys reads the stored versions of every key cached or watched, and
// refreshes those that changed; then it ends watches whose deadline passed.
// When the store cannot answer, cached keys age until requests read them
// again, and watches keep their last verdict.
func (s *APIKeyService) syncKeys(ctx context.Context) {
	cached := s.cache.versions()
	watched := s.watchedVersions()
	ids := make([]string, 0, len(cached)+len(watched))
	for id := range cached {
		ids = append(ids, id)
	}
	for id := range watched {
		if _, ok := cached[id]; !ok {
			ids = append(ids, id)
		}
	}
	if len(ids) > 0 {
		began := s.now()
		stored, err := s.repo.APIKeyVersions(ctx, ids)
		if err == nil {
			var changed []string
			for _, id := range ids {
				v, ok := stored[id]
				c, isCached := cached[id]
				if !ok || isCached && c != v || slices.ContainsFunc(watched[id], func(w int64) bool { return w != v }) {
					changed = append(changed, id)
				}
			}
			s.cache.confirm(stored, began)
			s.refreshKeys(ctx, changed...)
		}
	}
	s.endExpired(s.now())
}

// watchedVersions returns, for each watched key, the versions its watches
// last judged.
func (s *APIKeyService) watchedVersions() map[string][]int64 {
	s.guards.mu.Lock()
	defer s.guards.mu.Unlock()
	out := make(map[string][]int64, len(s.guards.byKey))
	for id, ws := range s.guards.byKey {
		for w := range ws {
			if !slices.Contains(out[id], w.key.Version) {
				out[id] = append(out[id], w.key.Version)
			}
		}
	}
	return out
}

// refreshKeys drops the cached entries of ids and judges their watches
// against the keys as stored now.
func (s *APIKeyService) refreshKeys(ctx context.Context, ids ...string) {
	for _, id := range ids {
		s.cache.invalidate(id)
		s.guards.mu.Lock()
		watched := len(s.guards.byKey[id]) > 0
		s.guards.mu.Unlock()
		if !watched {
			continue
		}
		k, err := s.repo.FindAPIKeyByID(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			k, err = nil, nil
		}
		if err != nil {
			continue // the next read of versions tries again
		}
		now := s.now()
		s.guards.mu.Lock()
		for w := range s.guards.byKey[id] {
			s.judgeLocked(w, k, now)
		}
		s.guards.mu.Unlock()
	}
}

// endExpired ends the watches whose deadline is not after now.
func (s *APIKeyService) endExpired(now time.Time) {
	s.guards.mu.Lock()
	defer s.guards.mu.Unlock()
	for _, ws := range s.guards.byKey {
		for w := range ws {
			if !w.deadline.IsZero() && !now.Before(w.deadline) {
				s.judgeLocked(w, w.key, now)
			}
		}
	}
}

// AuthStats is what a process's authentication is doing, for metrics.
type AuthStats struct {
	// CacheHits and CacheMisses count lookups of the credential cache
	// since the process started; a miss reads the key from the store.
	CacheHits, CacheMisses uint64
	// CachedCredentials is how many credentials the cache holds now.
	CachedCredentials int
	// Guarded is how many connections and streams are guarded now.
	Guarded int
}

// AuthStats returns the process's authentication figures now.
func (s *APIKeyService) AuthStats() AuthStats {
	s.guards.mu.Lock()
	guarded := 0
	for _, ws := range s.guards.byKey {
		guarded += len(ws)
	}
	s.guards.mu.Unlock()
	return AuthStats{
		CacheHits: s.cache.hits.Load(), CacheMisses: s.cache.misses.Load(),
		CachedCredentials: s.cache.size(), Guarded: guarded,
	}
}
