package domain

import (
	"context"
	"errors"
	"maps"
	"reflect"
	"sync"
	"testing"
	"time"
)

func TestAPIKeyService_FlushUsage(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		a, tokenA := mustCreateKey(t, s, CreateAPIKey{Name: "a", Scopes: []string{"admin"}})
		b, tokenB := mustCreateKey(t, s, CreateAPIKey{Name: "b", Scopes: []string{"admin"}})
		clk.Advance(time.Second)
		mustAuthenticate(t, s, tokenA)
		clk.Advance(time.Second)
		mustAuthenticate(t, s, tokenB)
		atB := clk.Now()
		clk.Advance(time.Second)
		mustAuthenticate(t, s, tokenA)
		atA := clk.Now()

		if err := s.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
		want := map[string]time.Time{a.ID: atA, b.ID: atB}
		if calls := repo.touchCalls(); len(calls) != 1 || !reflect.DeepEqual(calls[0], want) {
			t.Fatalf("TouchAPIKeys calls = %v, want one with %v", calls, want)
		}
		if got := repo.stored(a.ID).LastUsedAt; got == nil || !got.Equal(atA) {
			t.Errorf("a.LastUsedAt = %v, want %v", got, atA)
		}

		// Nothing new to write.
		if err := s.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := len(repo.touchCalls()); n != 1 {
			t.Errorf("TouchAPIKeys called %d times, want 1", n)
		}
	})

	t.Run("OKEmpty", func(t *testing.T) {
		s, repo, _ := newTestKeyService()
		if err := s.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
		if calls := repo.touchCalls(); len(calls) != 0 {
			t.Errorf("TouchAPIKeys called with %v", calls)
		}
	})

	t.Run("ErrRepoKeepsBatch", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		a, tokenA := mustCreateKey(t, s, CreateAPIKey{Name: "a", Scopes: []string{"admin"}})
		b, tokenB := mustCreateKey(t, s, CreateAPIKey{Name: "b", Scopes: []string{"admin"}})
		mustAuthenticate(t, s, tokenA)
		mustAuthenticate(t, s, tokenB)
		atB := clk.Now()

		boom := errors.New("database is locked")
		repo.set(func(r *keyRepo) { r.touchErr = boom })
		if err := s.FlushUsage(t.Context()); !errors.Is(err, boom) {
			t.Fatalf("FlushUsage = %v, want %v", err, boom)
		}

		// A use after the failure is newer than the kept one and wins.
		clk.Advance(time.Minute)
		mustAuthenticate(t, s, tokenA)
		repo.set(func(r *keyRepo) { r.touchErr = nil })
		if err := s.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
		calls := repo.touchCalls()
		want := map[string]time.Time{a.ID: clk.Now(), b.ID: atB}
		if len(calls) != 2 || !reflect.DeepEqual(calls[1], want) {
			t.Fatalf("TouchAPIKeys calls = %v, want a retry with %v", calls, want)
		}
	})

	t.Run("ErrRepoKeepsNewerUse", func(t *testing.T) {
		// A use recorded while the failing flush is in flight must not be
		// overwritten by the older time from the failed batch.
		s, repo, clk := newTestKeyService()
		a, tokenA := mustCreateKey(t, s, CreateAPIKey{Name: "a", Scopes: []string{"admin"}})
		mustAuthenticate(t, s, tokenA)
		boom := errors.New("timeout")
		repo.set(func(r *keyRepo) {
			r.touchErr = boom
			r.onTouch = func() {
				clk.Advance(time.Minute)
				mustAuthenticate(t, s, tokenA)
			}
		})
		if err := s.FlushUsage(t.Context()); !errors.Is(err, boom) {
			t.Fatalf("FlushUsage = %v, want %v", err, boom)
		}
		repo.set(func(r *keyRepo) { r.touchErr, r.onTouch = nil, nil })
		if err := s.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
		calls := repo.touchCalls()
		if want := (map[string]time.Time{a.ID: clk.Now()}); len(calls) != 2 || !reflect.DeepEqual(calls[1], want) {
			t.Fatalf("TouchAPIKeys calls = %v, want a retry with %v", calls, want)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s, repo, clk := newTestKeyService()
		var tokens []string
		var ids []string
		for range 8 {
			k, token := mustCreateKey(t, s, CreateAPIKey{Name: "k", Scopes: []string{"admin"}})
			tokens, ids = append(tokens, token), append(ids, k.ID)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var flushes sync.WaitGroup
		flushes.Go(func() {
			for ctx.Err() == nil {
				if err := s.FlushUsage(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
		var users sync.WaitGroup
		for _, token := range tokens {
			users.Go(func() {
				for range 200 {
					clk.Advance(time.Millisecond)
					if _, err := s.Authenticate(ctx, token, clientAddr); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		users.Wait()
		cancel()
		flushes.Wait()
		if err := s.FlushUsage(t.Context()); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, c := range repo.touchCalls() {
			for id := range maps.Keys(c) {
				seen[id] = true
			}
		}
		for _, id := range ids {
			if !seen[id] || repo.stored(id).LastUsedAt == nil {
				t.Errorf("use of %s was never written", id)
			}
		}
	})
}
