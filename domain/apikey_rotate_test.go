package domain

import (
	"reflect"
	"testing"
	"time"
)

func TestAPIKeyService_Rotate(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		k, oldToken := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"projects:read"}})
		grace := time.Hour
		rotated, newToken, err := s.Rotate(operatorContext(t), k.ID, grace)
		if err != nil {
			t.Fatal(err)
		}
		if newToken == oldToken || rotated.ID != k.ID {
			t.Fatalf("Rotate returned key %s and token %q; want the same key with a new token", rotated.ID, newToken)
		}
		if rotated.PreviousSecretHash != k.SecretHash || rotated.SecretHash == k.SecretHash {
			t.Errorf("hashes after rotation: current %q, previous %q; old current was %q", rotated.SecretHash, rotated.PreviousSecretHash, k.SecretHash)
		}
		wantEnd := clk.Now().Add(grace).UTC().Truncate(time.Microsecond)
		if got := rotated.PreviousSecretExpiresAt; got == nil || !got.Equal(wantEnd) || got.Location() != time.UTC {
			t.Errorf("PreviousSecretExpiresAt = %v, want %v in UTC", got, wantEnd)
		}
		if stored := repo.stored(k.ID); !reflect.DeepEqual(stored, rotated) {
			t.Errorf("stored %+v\nwant   %+v", stored, rotated)
		}

		mustAuthenticate(t, s, newToken)
		mustAuthenticate(t, s, oldToken)
		clk.Advance(grace - time.Microsecond)
		mustAuthenticate(t, s, oldToken)
		clk.Advance(time.Microsecond)
		_, err = s.Authenticate(t.Context(), oldToken, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
		mustAuthenticate(t, s, newToken)
	})

	t.Run("OKNoGrace", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, oldToken := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		_, newToken, err := s.Rotate(operatorContext(t), k.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Authenticate(t.Context(), oldToken, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
		mustAuthenticate(t, s, newToken)
	})

	t.Run("OKMaxGrace", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		k, oldToken := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		if _, _, err := s.Rotate(operatorContext(t), k.ID, MaxRotationGrace); err != nil {
			t.Fatal(err)
		}
		clk.Advance(MaxRotationGrace - time.Second)
		mustAuthenticate(t, s, oldToken)
	})

	t.Run("OKTwiceDropsFirstToken", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, first := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		_, second, err := s.Rotate(operatorContext(t), k.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, third, err := s.Rotate(operatorContext(t), k.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Authenticate(t.Context(), first, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
		mustAuthenticate(t, s, second)
		mustAuthenticate(t, s, third)
	})

	t.Run("OKSelf", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		self, oldToken := mustCreateKey(t, s, CreateAPIKey{Name: "self", Scopes: []string{"keys:write", "projects:read"}})
		_, newToken, err := s.Rotate(keyContext(t, self), self.ID, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		mustAuthenticate(t, s, oldToken)
		mustAuthenticate(t, s, newToken)
	})

	t.Run("OKWeakerKeyItCreated", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"keys:write", "projects:read"}})
		target, _ := mustCreateChild(t, s, caller, CreateAPIKey{Name: "target", Scopes: []string{"projects:read"}})
		if _, _, err := s.Rotate(keyContext(t, caller), target.ID, 0); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("ErrForbiddenWeakerKeyItDidNotCreate", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"keys:write", "projects:read"}})
		target, _ := mustCreateKey(t, s, CreateAPIKey{Name: "target", Scopes: []string{"projects:read"}})
		_, _, err := s.Rotate(keyContext(t, caller), target.ID, 0)
		wantCode(t, err, EFORBIDDEN)
	})

	t.Run("ErrForbiddenStrongerKey", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"keys:write", "projects:read"}})
		target, token := mustCreateKey(t, s, CreateAPIKey{Name: "target", Scopes: []string{"projects:read", "commands:write"}})
		k, newToken, err := s.Rotate(keyContext(t, caller), target.ID, 0)
		wantCode(t, err, EFORBIDDEN)
		if k != nil || newToken != "" {
			t.Errorf("Rotate returned %+v, %q with an error", k, newToken)
		}
		if !reflect.DeepEqual(repo.stored(target.ID), target) {
			t.Error("the target key changed")
		}
		mustAuthenticate(t, s, token)
	})

	t.Run("ErrForbiddenWithoutKeysWrite", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"keys:read"}})
		_, _, err := s.Rotate(keyContext(t, caller), caller.ID, 0)
		wantCode(t, err, EFORBIDDEN)
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		_, _, err := s.Rotate(t.Context(), k.ID, 0)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	for _, grace := range []time.Duration{-time.Nanosecond, -time.Hour, MaxRotationGrace + time.Nanosecond, 1 << 62} {
		t.Run("ErrInvalidGrace", func(t *testing.T) {
			s, repo, _ := newTestKeyService()
			k, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
			_, _, err := s.Rotate(operatorContext(t), k.ID, grace)
			wantCode(t, err, EINVALID)
			if got, want := ErrorMessage(err), "gracePeriodSeconds: must be between 0 and 2592000"; got != want {
				t.Errorf("message = %q, want %q", got, want)
			}
			if _, _, u := repo.calls(); u != 0 {
				t.Errorf("repo updated %d times", u)
			}
			mustAuthenticate(t, s, token)
		})
	}

	for _, tt := range []struct {
		name  string
		spoil func(t *testing.T, s *APIKeyService, clk *clock, id string)
	}{
		{"ErrConflictRevoked", func(t *testing.T, s *APIKeyService, _ *clock, id string) {
			if _, _, err := s.Revoke(operatorContext(t), id); err != nil {
				t.Fatal(err)
			}
		}},
		{"ErrConflictExpired", func(_ *testing.T, _ *APIKeyService, clk *clock, _ string) {
			clk.Advance(2 * time.Hour)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, repo, clk := newTestKeyService()
			k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, ExpiresAt: ptr(clk.Now().Add(time.Hour))})
			tt.spoil(t, s, clk, k.ID)
			before := repo.stored(k.ID)
			_, token, err := s.Rotate(operatorContext(t), k.ID, time.Hour)
			wantCode(t, err, ECONFLICT)
			if token != "" {
				t.Errorf("Rotate returned token %q with an error", token)
			}
			if !reflect.DeepEqual(repo.stored(k.ID), before) {
				t.Error("the key changed")
			}
		})
	}

	t.Run("ErrNotFound", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		_, _, err := s.Rotate(operatorContext(t), NewID(clk.Now()), 0)
		wantCode(t, err, ENOTFOUND)
	})

	t.Run("ErrNotFoundInvalidID", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		_, _, err := s.Rotate(operatorContext(t), "../../etc", 0)
		wantCode(t, err, ENOTFOUND)
		if _, _, u := repo.calls(); u != 0 {
			t.Errorf("repo updated %d times", u)
		}
	})
}

func mustAuthenticate(tb testing.TB, s *APIKeyService, token string) *APIKey {
	tb.Helper()
	k, err := s.Authenticate(tb.Context(), token, clientAddr)
	if err != nil {
		tb.Fatalf("Authenticate(%q): %v", token, err)
	}
	return k
}

func TestAPIKeyService_Revoke(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		clk.Advance(time.Minute)
		got, _, err := s.Revoke(operatorContext(t), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := clk.Now().UTC().Truncate(time.Microsecond)
		if got.RevokedAt == nil || !got.RevokedAt.Equal(want) || got.Status(clk.Now()) != APIKeyRevoked {
			t.Errorf("RevokedAt = %v, status %s; want %v, REVOKED", got.RevokedAt, got.Status(clk.Now()), want)
		}
		if !reflect.DeepEqual(repo.stored(k.ID), got) {
			t.Error("the revocation was not stored")
		}
		_, err = s.Authenticate(t.Context(), token, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("OKIdempotent", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		first, _, err := s.Revoke(operatorContext(t), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		second, _, err := s.Revoke(operatorContext(t), k.ID)
		if err != nil {
			t.Fatalf("second Revoke: %v", err)
		}
		if !second.RevokedAt.Equal(*first.RevokedAt) {
			t.Errorf("second Revoke moved RevokedAt from %v to %v", first.RevokedAt, second.RevokedAt)
		}
	})

	t.Run("OKRotatedKeyLosesBothSecrets", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, oldToken := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		_, newToken, err := s.Rotate(operatorContext(t), k.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Revoke(operatorContext(t), k.ID); err != nil {
			t.Fatal(err)
		}
		for _, token := range []string{oldToken, newToken} {
			_, err := s.Authenticate(t.Context(), token, clientAddr)
			wantCode(t, err, EUNAUTHENTICATED)
		}
	})

	t.Run("OKExpired", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, ExpiresAt: ptr(clk.Now().Add(time.Minute))})
		clk.Advance(time.Hour)
		if _, _, err := s.Revoke(operatorContext(t), k.ID); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OKSelf", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		self, token := mustCreateKey(t, s, CreateAPIKey{Name: "self", Scopes: []string{"keys:write"}})
		if _, _, err := s.Revoke(keyContext(t, self), self.ID); err != nil {
			t.Fatal(err)
		}
		_, err := s.Authenticate(t.Context(), token, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("ErrForbiddenStrongerKey", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"keys:write"}})
		target, token := mustCreateKey(t, s, CreateAPIKey{Name: "admin", Scopes: []string{"admin"}})
		_, _, err := s.Revoke(keyContext(t, caller), target.ID)
		wantCode(t, err, EFORBIDDEN)
		if repo.stored(target.ID).RevokedAt != nil {
			t.Error("the target was revoked")
		}
		mustAuthenticate(t, s, token)
	})

	t.Run("ErrForbiddenWithoutKeysWrite", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		caller, _ := mustCreateKey(t, s, CreateAPIKey{Name: "caller", Scopes: []string{"keys:read"}})
		_, _, err := s.Revoke(keyContext(t, caller), caller.ID)
		wantCode(t, err, EFORBIDDEN)
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		_, _, err := s.Revoke(t.Context(), k.ID)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		_, _, err := s.Revoke(operatorContext(t), NewID(clk.Now()))
		wantCode(t, err, ENOTFOUND)
	})

	t.Run("ErrNotFoundInvalidID", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		_, _, err := s.Revoke(operatorContext(t), "")
		wantCode(t, err, ENOTFOUND)
		if _, _, u := repo.calls(); u != 0 {
			t.Errorf("repo updated %d times", u)
		}
	})
}
