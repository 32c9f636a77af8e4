package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// TestAPIKeyChangedBySQL checks that a key's row changed by SQL outside
// rdev (an operator narrowing a key's scopes or revoking it by hand, since
// no API narrows a key) raises its version as the store's own changes do,
// so that every process holding the key sees the change (rdev issue 14: a
// replica confirmed its cached key by an unchanged version for ever).
// Recording a use is still no change. db runs SQL on the store's database.
func TestAPIKeyChangedBySQL(t *testing.T, open func(t *testing.T) (domain.APIKeyRepository, AuditDB)) {
	for name, change := range map[string]string{
		"Scopes":   `UPDATE api_keys SET scopes = '[]' WHERE id = ?`,
		"Projects": `UPDATE api_keys SET project_names = '["web"]' WHERE id = ?`,
		"Revoked":  `UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE id = ?`,
		"Expired":  `UPDATE api_keys SET expires_at = CURRENT_TIMESTAMP WHERE id = ?`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			repo, db := open(t)
			ctx := t.Context()
			k := newAPIKey()
			mustCreateAPIKey(t, ctx, repo, k)
			if err := db.Exec(ctx, change, k.ID); err != nil {
				t.Fatalf("%s: %v", change, err)
			}
			wantVersion(t, ctx, repo, k.ID, 2)
			if _, err := repo.UpdateAPIKey(ctx, k.ID, func(k *domain.APIKey) error { k.Name += "+"; return nil }, nil); err != nil {
				t.Fatalf("UpdateAPIKey: %v", err)
			}
			wantVersion(t, ctx, repo, k.ID, 3) // once per change, not twice
		})
	}

	t.Run("UseIsNoChange", func(t *testing.T) {
		t.Parallel()
		repo, db := open(t)
		ctx := t.Context()
		k := newAPIKey()
		mustCreateAPIKey(t, ctx, repo, k)
		if err := db.Exec(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ?`, time.Now().UTC(), k.ID); err != nil {
			t.Fatal(err)
		}
		wantVersion(t, ctx, repo, k.ID, 1)
	})
}

func wantVersion(tb testing.TB, ctx context.Context, repo domain.APIKeyRepository, id string, want int64) {
	tb.Helper()
	got, err := repo.APIKeyVersions(ctx, []string{id})
	if err != nil {
		tb.Fatalf("APIKeyVersions: %v", err)
	}
	if got[id] != want {
		tb.Errorf("version = %d, want %d", got[id], want)
	}
}
