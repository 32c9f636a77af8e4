package domain

import (
	"context"
	"strconv"
)

// Keys form trees: a key made by a key (APIKey.CreatedBy) is its child.
// A key may rotate or revoke only itself and its descendants, and revoking
// a key revokes its descendants; the operator and admin keys manage every
// key.

// maxKeyTreeDepth bounds the walk up a key's creators. Keys are made one
// at a time by a caller, so no real tree comes near it; it only guards
// against stored data that loops.
const maxKeyTreeDepth = 10_000

// manages reports whether caller may rotate or revoke the key id whatever
// its scopes: the operator and admin keys may, and so may the key itself
// and the keys that created it, directly or through the keys they
// created. CreatedBy never changes, so the answer read here still holds in
// the transaction that makes the change. It returns ENOTFOUND if there is
// no key id.
func (s *APIKeyService) manages(ctx context.Context, caller *Caller, id string) (bool, error) {
	if caller.Operator || caller.Scopes().Has(ScopeAdmin) || id == caller.KeyID() {
		return true, nil
	}
	k, err := s.repo.FindAPIKeyByID(ctx, id)
	if err != nil {
		return false, err
	}
	for depth := 0; k.CreatedBy != "" && depth < maxKeyTreeDepth; depth++ {
		if k.CreatedBy == caller.KeyID() {
			return true, nil
		}
		if k, err = s.repo.FindAPIKeyByID(ctx, k.CreatedBy); ErrorCode(err) == ENOTFOUND {
			return false, nil // made by a key that is gone: nobody's descendant
		} else if err != nil {
			return false, err
		}
	}
	return false, nil
}

// mayChange returns EFORBIDDEN unless a caller that manages (see manages)
// the key k, as stored, also holds all of k's scopes. A key the caller may
// not see (see keyVisible) is ENOTFOUND, as it is to Get, so that trying to
// change it tells nothing of it.
func mayChange(caller *Caller, manages bool, k *APIKey) error {
	if !keyVisible(caller, k) {
		return apiKeyNotFound(k.ID)
	}
	if !manages {
		return Errorf(EFORBIDDEN, "API key %s was not created by this key (nor by a key it created): "+
			"only the key itself, the keys that created it and admin keys may rotate or revoke it", k.ID)
	}
	if !caller.Scopes().Covers(k.Scopes) {
		return Errorf(EFORBIDDEN, "API key %s holds scopes this key lacks", k.ID)
	}
	return nil
}

// revocationEntries returns the audit entries of a revocation: entry for
// the key revoked (with how many descendants went with it) and one entry
// per descendant revoked with it, naming the key whose revocation it
// followed and the key that created it.
func (s *APIKeyService) revocationEntries(ctx context.Context, entry *AuditEntry, root *APIKey, revoked []*APIKey) []*AuditEntry {
	if entry == nil {
		return nil
	}
	if len(revoked) > 0 {
		if entry.Details == nil {
			entry.Details = map[string]string{}
		}
		entry.Details["revokedDescendants"] = strconv.Itoa(len(revoked))
	}
	entries := []*AuditEntry{entry}
	for _, k := range revoked {
		e := s.audit.entry(ctx, AuditKeyRevoke, k.ID)
		e.Details = map[string]string{"cascadeFrom": root.ID, "createdBy": k.CreatedBy}
		entries = append(entries, e)
	}
	return entries
}
