package bunstore

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestTakeTurn(t *testing.T) {
	t.Run("InOrder", func(t *testing.T) {
		s := &Store{}
		s.TakeTurns(time.Minute)
		end, err := s.takeTurn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// Waiters are let in in the order they began to wait.
		order := make(chan int, 3)
		for i := range 3 {
			go func() {
				e, err := s.takeTurn(t.Context())
				if err != nil {
					t.Error(err)
					return
				}
				order <- i
				e()
			}()
			// Let waiter i block before the next one starts.
			time.Sleep(20 * time.Millisecond)
		}
		end()
		for want := range 3 {
			if got := <-order; got != want {
				t.Fatalf("turn %d went to waiter %d", want, got)
			}
		}
	})

	// A turn not had within the wait begins anyway, and ending it frees
	// nothing it does not hold.
	t.Run("WaitRunsOut", func(t *testing.T) {
		s := &Store{}
		s.TakeTurns(10 * time.Millisecond)
		end, _ := s.takeTurn(t.Context())
		late, err := s.takeTurn(t.Context())
		if err != nil {
			t.Fatalf("takeTurn: %v, want to go ahead without a turn", err)
		}
		late()
		if len(s.turns) != 1 {
			t.Error("ending a turn not had freed the held one")
		}
		end()
	})

	t.Run("Cancelled", func(t *testing.T) {
		s := &Store{}
		s.TakeTurns(time.Minute)
		end, _ := s.takeTurn(t.Context())
		defer end()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.takeTurn(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("takeTurn: %v, want context.Canceled", err)
		}
	})
}
