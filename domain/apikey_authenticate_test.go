package domain

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestAPIKeyService_Authenticate(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"projects:read"}})
		got, err := s.Authenticate(t.Context(), token, clientAddr)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, k) {
			t.Errorf("Authenticate = %+v, want %+v", got, k)
		}
	})

	t.Run("OKJustBeforeExpiry", func(t *testing.T) {
		s, _, clk := newTestKeyService()
		_, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, ExpiresAt: ptr(clk.Now().Add(time.Hour))})
		clk.Advance(time.Hour - time.Microsecond)
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("OKAllowedAddr", func(t *testing.T) {
		s, _, _ := newTestKeyService()
		_, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, AllowedCIDRs: []string{"10.0.0.0/8", "2001:db8::/32"}})
		for _, a := range []string{"10.1.2.3", "::ffff:10.1.2.3", "2001:db8::5"} {
			if _, err := s.Authenticate(t.Context(), token, netip.MustParseAddr(a)); err != nil {
				t.Errorf("Authenticate from %s: %v", a, err)
			}
		}
	})

	for _, tt := range []struct {
		name    string
		token   func(t *testing.T, s *APIKeyService, clk *clock) string
		addr    netip.Addr
		code    string
		message string
	}{
		{"ErrMalformed", func(*testing.T, *APIKeyService, *clock) string { return "rdev_nope" }, clientAddr, EUNAUTHENTICATED, "malformed API key"},
		{"ErrChecksum", func(t *testing.T, s *APIKeyService, _ *clock) string {
			_, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
			return token[:30] + nextChar(token[30]) + token[31:]
		}, clientAddr, EUNAUTHENTICATED, "checksum mismatch"},
		{"ErrUnknownID", func(_ *testing.T, _ *APIKeyService, clk *clock) string {
			token, _ := newToken(NewID(clk.Now()))
			return token
		}, clientAddr, EUNAUTHENTICATED, "invalid API key"},
		{"ErrWrongSecret", func(t *testing.T, s *APIKeyService, _ *clock) string {
			k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
			token, _ := newToken(k.ID)
			return token
		}, clientAddr, EUNAUTHENTICATED, "invalid API key"},
		{"ErrRevoked", func(t *testing.T, s *APIKeyService, _ *clock) string {
			k, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
			if _, _, err := s.Revoke(operatorContext(t), k.ID); err != nil {
				t.Fatal(err)
			}
			return token
		}, clientAddr, EUNAUTHENTICATED, "has been revoked"},
		{"ErrExpired", func(t *testing.T, s *APIKeyService, clk *clock) string {
			_, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, ExpiresAt: ptr(clk.Now().Add(time.Hour))})
			clk.Advance(time.Hour)
			return token
		}, clientAddr, EUNAUTHENTICATED, "has expired"},
		{"ErrForbiddenAddr", func(t *testing.T, s *APIKeyService, _ *clock) string {
			_, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
			return token
		}, netip.MustParseAddr("192.0.2.1"), EFORBIDDEN, "may not be used from 192.0.2.1"},
		{"ErrForbiddenMappedAddr", func(t *testing.T, s *APIKeyService, _ *clock) string {
			_, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
			return token
		}, netip.MustParseAddr("::ffff:192.0.2.1"), EFORBIDDEN, "may not be used from"},
		{"ErrForbiddenNoAddr", func(t *testing.T, s *APIKeyService, _ *clock) string {
			_, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}, AllowedCIDRs: []string{"10.0.0.0/8"}})
			return token
		}, netip.Addr{}, EFORBIDDEN, "may not be used from"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, repo, clk := newTestKeyService()
			token := tt.token(t, s, clk)
			k, err := s.Authenticate(t.Context(), token, tt.addr)
			wantCode(t, err, tt.code)
			if msg := ErrorMessage(err); !strings.Contains(msg, tt.message) {
				t.Errorf("message %q does not contain %q", msg, tt.message)
			}
			if k != nil {
				t.Errorf("Authenticate returned %+v with an error", k)
			}
			// A failed attempt is not a use.
			if err := s.FlushUsage(t.Context()); err != nil {
				t.Fatal(err)
			}
			if calls := repo.touchCalls(); len(calls) != 0 {
				t.Errorf("failed authentication recorded use: %v", calls)
			}
		})
	}

	t.Run("ErrRevokedDuringRead", func(t *testing.T) {
		// A request that read the key before its revocation here, and
		// finished after it, may pass; it must not put the key it read
		// back in the cache for the requests after the revocation.
		s, repo, _ := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"projects:read"}})
		repo.set(func(r *keyRepo) {
			r.afterFind = func() {
				if _, _, err := s.Revoke(operatorContext(t), k.ID); err != nil {
					t.Error(err)
				}
			}
		})
		mustAuthenticate(t, s, token)
		if repo.stored(k.ID).RevokedAt == nil {
			t.Fatal("the key was not revoked during the read")
		}
		_, err := s.Authenticate(t.Context(), token, clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("ErrMalformedSkipsRepo", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		_, err := s.Authenticate(t.Context(), strings.Repeat("x", TokenLength), clientAddr)
		wantCode(t, err, EUNAUTHENTICATED)
		if _, f, _ := repo.calls(); f != 0 {
			t.Errorf("repo searched %d times for a malformed token", f)
		}
	})

	t.Run("ErrInternal", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		_, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		boom := errors.New("connection reset")
		repo.set(func(r *keyRepo) { r.findErr = boom })
		_, err := s.Authenticate(t.Context(), token, clientAddr)
		if !errors.Is(err, boom) || ErrorCode(err) != EINTERNAL {
			t.Errorf("err = %v, want %v passed through as internal", err, boom)
		}
	})

	t.Run("RecordsUse", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		k, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
		clk.Advance(time.Minute)
		if _, err := s.Authenticate(t.Context(), token, clientAddr); err != nil {
			t.Fatal(err)
		}
		if repo.stored(k.ID).LastUsedAt != nil {
			t.Error("Authenticate wrote last use at once; it should wait for FlushUsage")
		}
		if err := s.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := repo.stored(k.ID).LastUsedAt; got == nil || !got.Equal(clk.Now()) {
			t.Errorf("LastUsedAt = %v, want %v", got, clk.Now())
		}
	})
}

// nextChar returns another character of the ID alphabet.
func nextChar(c byte) string {
	i := strings.IndexByte(idAlphabet, c)
	return string(idAlphabet[(i+1)%len(idAlphabet)])
}

func TestAPIKeyService_Viewer(t *testing.T) {
	s, _, _ := newTestKeyService()
	k := &APIKey{ID: "0123456789abcdef", Scopes: Scopes{ScopeProjectsRead}}

	t.Run("OK", func(t *testing.T) {
		got, err := s.Viewer(keyContext(t, k))
		if err != nil || got != k {
			t.Errorf("Viewer = %+v, %v; want %+v", got, err, k)
		}
	})

	t.Run("OKWithoutScopes", func(t *testing.T) {
		bare := &APIKey{ID: "0123456789abcdeg"}
		if got, err := s.Viewer(keyContext(t, bare)); err != nil || got != bare {
			t.Errorf("Viewer = %+v, %v; want %+v", got, err, bare)
		}
	})

	t.Run("ErrUnauthenticated", func(t *testing.T) {
		_, err := s.Viewer(t.Context())
		wantCode(t, err, EUNAUTHENTICATED)
	})

	t.Run("ErrUnauthenticatedOperator", func(t *testing.T) {
		_, err := s.Viewer(operatorContext(t))
		wantCode(t, err, EUNAUTHENTICATED)
	})
}
