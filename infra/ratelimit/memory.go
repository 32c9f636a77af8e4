package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/ulule/limiter/v3"
)

// sweepEvery is how often MemoryStore forgets keys whose every charge has left
// its window.
const sweepEvery = time.Minute

// MemoryStore is an exact sliding-window limiter.Store for one process: each
// key keeps a log of its charges, so at most rate.Limit units are ever taken
// in any span of rate.Period. A charge that does not fit is refused whole
// and not recorded, so a client retrying a spent budget does not push its
// own recovery further out.
type MemoryStore struct {
	mu        sync.Mutex
	logs      map[string]*chargeLog
	now       func() time.Time
	lastSweep time.Time
}

var _ limiter.Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store on the wall clock.
func NewMemoryStore() *MemoryStore { return NewMemoryStoreWithClock(time.Now) }

// NewMemoryStoreWithClock returns an empty store that reads the time from now,
// for tests that step through windows.
func NewMemoryStoreWithClock(now func() time.Time) *MemoryStore {
	return &MemoryStore{logs: map[string]*chargeLog{}, now: now, lastSweep: now()}
}

// chargeLog is one key's charges in its window, oldest first.
type chargeLog struct {
	charges []charge
	used    int64
	// expires is when the newest charge leaves the window.
	expires time.Time
}

type charge struct {
	at time.Time
	n  int64
}

// prune drops the charges that are out of the window ending at now: a charge
// made at t counts in [t, t+period).
func (l *chargeLog) prune(now time.Time, period time.Duration) {
	edge := now.Add(-period)
	i := 0
	for i < len(l.charges) && !l.charges[i].at.After(edge) {
		l.used -= l.charges[i].n
		i++
	}
	l.charges = l.charges[i:]
}

func (l *chargeLog) context(now time.Time, rate limiter.Rate, reached bool) limiter.Context {
	reset := now.Add(rate.Period)
	if len(l.charges) > 0 {
		reset = l.charges[0].at.Add(rate.Period)
	}
	return limiter.Context{
		Limit:     rate.Limit,
		Remaining: max(rate.Limit-l.used, 0),
		Reset:     ceilUnix(reset),
		Reached:   reached,
	}
}

// Increment takes count units from key if they fit in rate; Reached reports
// that they did not, and then nothing was taken.
func (s *MemoryStore) Increment(_ context.Context, key string, count int64, rate limiter.Rate) (limiter.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	l := s.logs[key]
	if l == nil {
		l = &chargeLog{}
		s.logs[key] = l
	}
	l.prune(now, rate.Period)
	if count <= 0 {
		return l.context(now, rate, false), nil
	}
	if l.used+count > rate.Limit {
		return l.context(now, rate, true), nil
	}
	l.charges = append(l.charges, charge{at: now, n: count})
	l.used += count
	l.expires = now.Add(rate.Period)
	return l.context(now, rate, false), nil
}

// Get takes one unit from key, as Increment.
func (s *MemoryStore) Get(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	return s.Increment(ctx, key, 1, rate)
}

// Peek returns key's state without taking anything.
func (s *MemoryStore) Peek(ctx context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	return s.Increment(ctx, key, 0, rate)
}

// Reset forgets key's charges.
func (s *MemoryStore) Reset(_ context.Context, key string, rate limiter.Rate) (limiter.Context, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.logs, key)
	now := s.now()
	return (&chargeLog{}).context(now, rate, false), nil
}

// sweep forgets, at most once per sweepEvery, the keys that have no charge in
// their window any more, so a store that sees many keys does not grow
// without bound.
func (s *MemoryStore) sweep(now time.Time) {
	if now.Sub(s.lastSweep) < sweepEvery {
		return
	}
	s.lastSweep = now
	for k, l := range s.logs {
		if !l.expires.After(now) {
			delete(s.logs, k)
		}
	}
}

// len returns the number of keys held, for tests.
func (s *MemoryStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.logs)
}

// ceilUnix returns t in Unix seconds, rounded up, so a client told to come
// back then never comes back early.
func ceilUnix(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}
