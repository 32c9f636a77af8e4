package domain

import (
	"sync"
	"sync/atomic"
	"time"
)

// Authentication cache tuning.
const (
	// AuthStaleness is the oldest a key may be, as known to this process,
	// when it authenticates a request or keeps a connection open: a change
	// made anywhere (another replica, the CLI) reaches every request and
	// every open connection within it. FollowKeyChanges keeps cached keys
	// current by reading their versions more often than that; when it
	// cannot, requests read their key from the store again.
	AuthStaleness = 5 * time.Second
	// keyPollInterval is how often FollowKeyChanges reads the versions of
	// the keys this process holds.
	keyPollInterval = time.Second
	// authCacheSize bounds the cached credentials.
	authCacheSize = 10_000
)

// credential names a secret presented for a key: the key's ID and the hex
// SHA-256 of the secret. Only the hash is kept.
type credential struct {
	keyID, secretHash string
}

// authCache holds keys by the credentials that authenticated them, so that
// a request touches the store only on a miss. An entry is believed while
// its key is known to be current: read, or confirmed by a read of its
// version, less than AuthStaleness ago. Changes drop a key's entries
// (invalidate), and a read that began before a change and ends after it
// does not put what it read back (see changedSince).
type authCache struct {
	mu      sync.RWMutex
	entries map[credential]*cachedKey
	// byKey lists each key's credentials, for invalidate.
	byKey map[string][]credential
	// gen counts invalidations; dropped holds the gen of each key's last
	// invalidation, for the keys invalidated since gen was floor (the map
	// is emptied when it grows past authCacheSize).
	gen     uint64
	dropped map[string]uint64
	floor   uint64

	// hits and misses count lookups, for AuthStats.
	hits, misses atomic.Uint64
}

type cachedKey struct {
	key *APIKey
	// current is when the stored key was last known to be key: when the
	// read that returned it, or a later read of its version, began.
	current time.Time
}

func newAuthCache() *authCache {
	return &authCache{entries: map[credential]*cachedKey{}, byKey: map[string][]credential{}, dropped: map[string]uint64{}}
}

// generation returns the count of invalidations so far: take it before
// reading a key, and changedSince tells whether the key changed after.
func (c *authCache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// changedSince reports whether the key id may have been invalidated since
// the generation gen.
func (c *authCache) changedSince(id string, gen uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.changedSinceLocked(id, gen)
}

func (c *authCache) changedSinceLocked(id string, gen uint64) bool {
	return gen < c.floor || c.dropped[id] > gen
}

// get returns the key cred authenticated, if it is cached and known to be
// current at now.
func (c *authCache) get(cred credential, now time.Time) *APIKey {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.entries[cred]
	if e == nil || now.Sub(e.current) >= AuthStaleness {
		c.misses.Add(1)
		return nil
	}
	c.hits.Add(1)
	return e.key
}

// size returns how many credentials are cached.
func (c *authCache) size() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// put caches k, as read by a read that began at current, in generation
// gen, as what cred authenticates, unless the key was invalidated since
// gen: the change that invalidated it may be missing from k. A full cache
// first drops an arbitrary entry.
func (c *authCache) put(cred credential, k *APIKey, current time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.changedSinceLocked(cred.keyID, gen) {
		return
	}
	if _, ok := c.entries[cred]; !ok {
		if len(c.entries) >= authCacheSize {
			for victim := range c.entries {
				c.dropLocked(victim.keyID)
				break
			}
		}
		c.byKey[cred.keyID] = append(c.byKey[cred.keyID], cred)
	}
	c.entries[cred] = &cachedKey{key: k, current: current}
}

// invalidate drops every entry of the key id, and keeps reads of it that
// are in flight from putting it back.
func (c *authCache) invalidate(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(id)
	c.gen++
	if len(c.dropped) >= authCacheSize {
		clear(c.dropped)
		c.floor = c.gen
	}
	c.dropped[id] = c.gen
}

func (c *authCache) dropLocked(id string) {
	for _, cred := range c.byKey[id] {
		delete(c.entries, cred)
	}
	delete(c.byKey, id)
}

// versions returns the version of each cached key.
func (c *authCache) versions() map[string]int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]int64, len(c.byKey))
	for id, creds := range c.byKey {
		if e := c.entries[creds[0]]; e != nil {
			out[id] = e.key.Version
		}
	}
	return out
}

// confirm records that a read of versions which began at began found the
// stored versions given: entries holding those versions were current then.
func (c *authCache) confirm(stored map[string]int64, began time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, v := range stored {
		for _, cred := range c.byKey[id] {
			if e := c.entries[cred]; e != nil && e.key.Version == v && began.After(e.current) {
				e.current = began
			}
		}
	}
}
