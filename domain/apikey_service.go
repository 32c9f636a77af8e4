package domain

import (
	"context"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// APIKeyService issues, authenticates, rotates and revokes API keys. Every
// change is recorded in the audit log in the transaction that makes it, and
// every refused attempt by an authenticated caller on its own.
type APIKeyService struct {
	// DefaultRateLimit is the requests per second of a key without its own
	// rate limit (RateLimits.RequestsPerSecond), 0 for unlimited: a key
	// made by such a key may not be given more. Set it before use.
	DefaultRateLimit int

	repo  APIKeyRepository
	audit *AuditService
	hub   Hub
	bcast Broadcaster
	now   func() time.Time

	cache  *authCache
	guards guards
	// pollEvery is how often FollowKeyChanges reads key versions.
	pollEvery time.Duration

	mu       sync.Mutex
	lastUsed map[string]time.Time // not yet written; see FlushUsage
}

// NewAPIKeyService returns a service over repo that records every change in
// audit's log (nil records nothing) and announces it on hub and bcast (each
// may be nil: a process that serves no requests has no one to tell).
func NewAPIKeyService(repo APIKeyRepository, audit *AuditService, hub Hub, bcast Broadcaster) *APIKeyService {
	return &APIKeyService{
		repo: repo, audit: audit, hub: hub, bcast: bcast, now: time.Now,
		cache: newAuthCache(), guards: guards{byKey: map[string]map[*keyWatch]struct{}{}}, pollEvery: keyPollInterval,
		lastUsed: map[string]time.Time{},
	}
}

// CreateAPIKey is the input of APIKeyService.Create.
type CreateAPIKey struct {
	Name         string
	Scopes       []string
	ExpiresAt    *time.Time
	AllowedCIDRs []string
	// RateLimit overrides the default requests per second; nil or 0 keeps it.
	RateLimit *int
	// Projects and ProjectSelectors limit the key to projects by name and
	// by label selector (see ProjectScope); both empty is every project.
	Projects         []string
	ProjectSelectors []string
}

// Authenticate resolves a bearer token to its key, seen from addr. It returns
// EUNAUTHENTICATED for a malformed, unknown, wrong, expired or revoked key,
// and EFORBIDDEN when addr is outside the key's allowed CIDRs.
func (s *APIKeyService) Authenticate(ctx context.Context, token string, addr netip.Addr) (*APIKey, error) {
	c := &Caller{Addr: addr}
	if err := s.AuthenticateCaller(ctx, c, token); err != nil {
		return nil, err
	}
	return c.Key, nil
}

// AuthenticateCaller checks token for c, seen from c.Addr, and sets c.Key;
// it fails as Authenticate does. The key comes from
// a cache keyed by the credential, so a request reads the store only when
// the key is not cached or was last known to be current AuthStaleness ago.
func (s *APIKeyService) AuthenticateCaller(ctx context.Context, c *Caller, token string) error {
	id, secret, err := ParseToken(token)
	if err != nil {
		return err
	}
	now, gen := s.now(), s.cache.generation()
	cred := credential{keyID: id, secretHash: hashSecret(secret)}
	k := s.cache.get(cred, now)
	if k == nil {
		k, err = s.repo.FindAPIKeyByID(ctx, id)
		if ErrorCode(err) == ENOTFOUND {
			return Errorf(EUNAUTHENTICATED, "invalid API key")
		} else if err != nil {
			return err
		}
		if !k.matchesHash(cred.secretHash, now) {
			return Errorf(EUNAUTHENTICATED, "invalid API key")
		}
		s.cache.put(cred, k, now, gen)
	} else if !k.matchesHash(cred.secretHash, now) {
		return Errorf(EUNAUTHENTICATED, "invalid API key") // its grace period ended
	}
	switch k.Status(now) {
	case APIKeyRevoked:
		return Errorf(EUNAUTHENTICATED, "API key %s has been revoked", k.ID)
	case APIKeyExpired:
		return Errorf(EUNAUTHENTICATED, "API key %s has expired", k.ID)
	case APIKeyActive:
	}
	if !k.AllowsAddr(c.Addr) {
		return Errorf(EFORBIDDEN, "API key %s may not be used from %s", k.ID, c.Addr)
	}
	s.recordUse(k.ID, now)
	c.Key, c.secretHash, c.keyGen = k, cred.secretHash, gen
	return nil
}

// Create issues a key and returns it with its token, which is shown only
// here. The caller needs keys:write and may only grant scopes it holds
// itself; a key made by a key is also bounded by it (see boundByCreator).
// Both return EFORBIDDEN; bad input returns EINVALID, and a creator
// revoked since its request was authenticated EUNAUTHENTICATED.
func (s *APIKeyService) Create(ctx context.Context, in CreateAPIKey) (*APIKey, string, error) {
	entry := s.audit.entry(ctx, AuditKeyCreate, "")
	k, token, err := s.create(ctx, in, entry)
	if err != nil {
		return nil, "", s.audit.refused(ctx, entry, err)
	}
	return k, token, nil
}

func (s *APIKeyService) create(ctx context.Context, in CreateAPIKey, entry *AuditEntry) (*APIKey, string, error) {
	caller, err := Authorize(ctx, ScopeKeysWrite)
	if err != nil {
		return nil, "", err
	}
	k, err := s.newKey(in)
	if err != nil {
		return nil, "", err
	}
	if entry != nil {
		entry.Target, entry.Details = k.ID, keyDetails(k)
	}
	if !caller.Scopes().Covers(k.Scopes) {
		return nil, "", Errorf(EFORBIDDEN, "scopes: a key cannot grant scopes its creator lacks")
	}
	if err := k.Projects.Within(caller.Projects()); err != nil {
		return nil, "", err
	}
	if caller.Key != nil {
		if err := s.boundByCreator(k, caller.Key); err != nil {
			return nil, "", err
		}
		if entry != nil {
			entry.Details = keyDetails(k) // with what it inherited
		}
	}
	k.CreatedBy = caller.KeyID()
	token, secret := newToken(k.ID)
	k.SecretHash = hashSecret(secret)
	if err := s.repo.CreateAPIKey(ctx, k, entry); err != nil {
		return nil, "", err
	}
	return k, token, nil
}

func (s *APIKeyService) newKey(in CreateAPIKey) (*APIKey, error) {
	now := s.now()
	if err := validateKeyName(in.Name); err != nil {
		return nil, err
	}
	scopes, err := ParseScopes(in.Scopes)
	if err != nil {
		return nil, err
	}
	cidrs, err := ParseCIDRs(in.AllowedCIDRs)
	if err != nil {
		return nil, err
	}
	if err := validateExpiry(in.ExpiresAt, now); err != nil {
		return nil, err
	}
	projects, err := NewProjectScope(in.Projects, in.ProjectSelectors)
	if err != nil {
		return nil, err
	}
	k := &APIKey{
		ID: NewID(now), Name: in.Name, Scopes: scopes, AllowedCIDRs: cidrs, Projects: projects,
		CreatedAt: now.UTC().Truncate(time.Microsecond), ExpiresAt: utcMicros(in.ExpiresAt),
	}
	if in.RateLimit != nil {
		if err := validateKeyRateLimit(*in.RateLimit); err != nil {
			return nil, err
		}
		k.RateLimit = *in.RateLimit
	}
	return k, nil
}

// Viewer returns the calling key. It returns EUNAUTHENTICATED when the
// caller is not an API key.
func (s *APIKeyService) Viewer(ctx context.Context) (*APIKey, error) {
	c := CallerFromContext(ctx)
	if c == nil || c.Key == nil {
		return nil, Errorf(EUNAUTHENTICATED, "authentication required: send Authorization: Bearer <API key>")
	}
	return c.Key, nil
}

// Get returns a key. It needs keys:read; ENOTFOUND if there is no such key,
// or it reaches a project the caller's project scope does not.
func (s *APIKeyService) Get(ctx context.Context, id string) (*APIKey, error) {
	caller, err := Authorize(ctx, ScopeKeysRead)
	if err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, apiKeyNotFound(id)
	}
	k, err := s.repo.FindAPIKeyByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if !keyVisible(caller, k) {
		return nil, apiKeyNotFound(id)
	}
	return k, nil
}

// List returns a page of keys, oldest first: those within the caller's
// project scope, and itself. It needs keys:read.
func (s *APIKeyService) List(ctx context.Context, req PageRequest) (Page[*APIKey], error) {
	caller, err := Authorize(ctx, ScopeKeysRead)
	if err != nil {
		return Page[*APIKey]{}, err
	}
	var keep func(*APIKey) (bool, error)
	if !caller.Projects().Unrestricted() {
		keep = func(k *APIKey) (bool, error) { return keyVisible(caller, k), nil }
	}
	return scopedPage(req, func(after string, limit int) ([]*APIKey, error) {
		return s.repo.FindAPIKeys(ctx, APIKeyFilter{AfterID: after, Limit: limit})
	}, func(k *APIKey) string { return k.ID }, keep)
}

// apiKeyNotFound is the error of a key that does not exist, or that the
// caller may not see.
func apiKeyNotFound(id string) error {
	return Errorf(ENOTFOUND, "API key %q not found", id)
}

// keyVisible reports whether the caller may see k: its own key, or one
// whose project scope lies within the caller's.
func keyVisible(caller *Caller, k *APIKey) bool {
	return k.ID == caller.KeyID() || k.Projects.Within(caller.Projects()) == nil
}

// Revoke revokes a key at once, and with it, in the same transaction,
// every key it created, directly or through the keys it created; it
// returns the key and those descendants. Revoking a revoked key keeps its
// time and revokes any descendant still active. It needs keys:write, and
// the caller must be the key itself, one of the keys that created it, an
// admin key or the operator, holding every scope of the key (EFORBIDDEN
// otherwise).
func (s *APIKeyService) Revoke(ctx context.Context, id string) (*APIKey, []*APIKey, error) {
	entry := s.audit.entry(ctx, AuditKeyRevoke, Clip(id))
	k, revoked, err := s.revoke(ctx, id, entry)
	if err != nil {
		return nil, nil, s.audit.refused(ctx, entry, err)
	}
	return k, revoked, nil
}

func (s *APIKeyService) revoke(ctx context.Context, id string, entry *AuditEntry) (*APIKey, []*APIKey, error) {
	caller, err := Authorize(ctx, ScopeKeysWrite)
	if err != nil {
		return nil, nil, err
	}
	if !validID(id) {
		return nil, nil, apiKeyNotFound(id)
	}
	manages, err := s.manages(ctx, caller, id)
	if err != nil {
		return nil, nil, err
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	k, revoked, err := s.repo.RevokeAPIKeyTree(ctx, id, at, func(k *APIKey) error {
		if err := mayChange(caller, manages, k); err != nil {
			return err
		}
		if k.RevokedAt != nil && entry != nil {
			entry.Details = map[string]string{"alreadyRevoked": "true"}
		}
		return nil
	}, func(root *APIKey, revoked []*APIKey) []*AuditEntry {
		return s.revocationEntries(ctx, entry, root, revoked)
	})
	if err != nil {
		return nil, nil, err
	}
	// Every key whose row may have changed: k and the descendants revoked
	// with it.
	ids := []string{k.ID}
	for _, d := range revoked {
		ids = append(ids, d.ID)
	}
	s.keysChanged(ctx, ids...)
	return k, revoked, nil
}

// Rotate gives a key a new secret and returns the new token. The old secret
// keeps working for grace (0 ends it at once). Who may rotate a key is who
// may revoke it (see Revoke; EFORBIDDEN otherwise); a revoked or expired key
// returns ECONFLICT.
func (s *APIKeyService) Rotate(ctx context.Context, id string, grace time.Duration) (*APIKey, string, error) {
	entry := s.audit.entry(ctx, AuditKeyRotate, Clip(id))
	if entry != nil {
		entry.Details = map[string]string{"gracePeriodSeconds": strconv.FormatInt(int64(grace/time.Second), 10)}
	}
	k, token, err := s.rotate(ctx, id, grace, entry)
	if err != nil {
		return nil, "", s.audit.refused(ctx, entry, err)
	}
	s.keysChanged(ctx, k.ID)
	return k, token, nil
}

func (s *APIKeyService) rotate(ctx context.Context, id string, grace time.Duration, entry *AuditEntry) (*APIKey, string, error) {
	if _, err := Authorize(ctx, ScopeKeysWrite); err != nil {
		return nil, "", err
	}
	if err := validateRotationGrace(grace); err != nil {
		return nil, "", err
	}
	var token string
	k, err := s.changeKey(ctx, id, entry, func(k *APIKey) error {
		now := s.now()
		if st := k.Status(now); st != APIKeyActive {
			return Errorf(ECONFLICT, "API key %s is %s and cannot be rotated", k.ID, st)
		}
		var secret string
		token, secret = newToken(k.ID)
		k.PreviousSecretHash, k.SecretHash = k.SecretHash, hashSecret(secret)
		k.PreviousSecretExpiresAt = utcMicros(new(now.Add(grace)))
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return k, token, nil
}

// changeKey applies change to a key the caller may manage (see manages and
// mayChange), and appends entry in the same transaction.
func (s *APIKeyService) changeKey(ctx context.Context, id string, entry *AuditEntry, change func(*APIKey) error) (*APIKey, error) {
	caller, err := Authorize(ctx, ScopeKeysWrite)
	if err != nil {
		return nil, err
	}
	if !validID(id) {
		return nil, apiKeyNotFound(id)
	}
	manages, err := s.manages(ctx, caller, id)
	if err != nil {
		return nil, err
	}
	return s.repo.UpdateAPIKey(ctx, id, func(k *APIKey) error {
		if err := mayChange(caller, manages, k); err != nil {
			return err
		}
		return change(k)
	}, entry)
}

func (s *APIKeyService) recordUse(id string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.lastUsed[id]; !ok || at.After(cur) {
		s.lastUsed[id] = at
	}
}

// FlushUsage writes the last-used times recorded since the previous flush in
// one batch, so authentication never writes per request.
func (s *APIKeyService) FlushUsage(ctx context.Context) error {
	s.mu.Lock()
	batch := s.lastUsed
	s.lastUsed = map[string]time.Time{}
	s.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	if err := s.repo.TouchAPIKeys(ctx, batch); err != nil {
		s.mu.Lock()
		for id, t := range batch {
			if cur, ok := s.lastUsed[id]; !ok || t.After(cur) {
				s.lastUsed[id] = t
			}
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

func utcMicros(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}
