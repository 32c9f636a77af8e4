package ratelimit_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/ulule/limiter/v3"

	"github.com/rdev-hq/rdev/infra/ratelimit"
)

// BenchmarkIncrement compares the Postgres store's charge (one function call
// under an advisory lock, with its DELETE, SELECT and INSERT) with its
// baselines in the same run: a bare SELECT 1 round trip to the same database,
// and the memory store.
func BenchmarkIncrement(b *testing.B) {
	// A rate that is never reached, so every charge is written, over 64 keys
	// so the log of each stays short, as for real keys.
	rate := limiter.Rate{Period: time.Second, Limit: 1 << 40}
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = "requests:key" + strconv.Itoa(i)
	}
	b.Run("Memory", func(b *testing.B) {
		s := ratelimit.NewMemoryStore()
		i := 0
		for b.Loop() {
			if _, err := s.Increment(b.Context(), keys[i%len(keys)], 1, rate); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	db := mustOpenPostgres(b).DB()
	b.Run("PostgresSelect1", func(b *testing.B) {
		var one int
		for b.Loop() {
			if err := db.QueryRowContext(b.Context(), "SELECT 1").Scan(&one); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Postgres", func(b *testing.B) {
		s := ratelimit.NewPostgresStore(db)
		i := 0
		for b.Loop() {
			if _, err := s.Increment(b.Context(), keys[i%len(keys)], 1, rate); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("PostgresParallel", func(b *testing.B) {
		s := ratelimit.NewPostgresStore(db)
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := s.Increment(b.Context(), keys[i%len(keys)], 1, rate); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}
