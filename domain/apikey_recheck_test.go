package domain

import (
	"testing"
)

func TestAPIKeyService_Recheck(t *testing.T) {
	s, _, clk := newTestKeyService()
	k, _ := mustCreateKey(t, s, CreateAPIKey{Name: "socket", Scopes: []string{"projects:read"}})
	ctx := NewContextWithCaller(t.Context(), &Caller{Key: k, AuthenticatedAt: clk.Now()})

	t.Run("FreshIsNotReloaded", func(t *testing.T) {
		got, err := s.Recheck(ctx)
		if err != nil || got != ctx {
			t.Fatalf("Recheck of a fresh caller: %v, context changed %v", err, got != ctx)
		}
	})
	t.Run("OldIsReloaded", func(t *testing.T) {
		clk.Advance(RecheckAfter)
		got, err := s.Recheck(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := CallerFromContext(got)
		if c.Key.ID != k.ID || !c.AuthenticatedAt.Equal(clk.Now()) {
			t.Fatalf("caller after Recheck = %+v", c)
		}
	})
	t.Run("ErrRevoked", func(t *testing.T) {
		if _, _, err := s.Revoke(operatorContext(t), k.ID); err != nil {
			t.Fatal(err)
		}
		clk.Advance(RecheckAfter)
		_, err := s.Recheck(ctx)
		wantCode(t, err, EUNAUTHENTICATED)
	})
	t.Run("OperatorAndAnonymousPass", func(t *testing.T) {
		for _, c := range []*Caller{{Operator: true}, {}} {
			in := NewContextWithCaller(t.Context(), c)
			if got, err := s.Recheck(in); err != nil || got != in {
				t.Errorf("Recheck(%+v) = %v", c, err)
			}
		}
		if _, err := s.Recheck(t.Context()); err != nil {
			t.Errorf("Recheck without a caller: %v", err)
		}
	})
}
