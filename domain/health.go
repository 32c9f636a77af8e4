package domain

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// ComponentStatus is how one part of rdev is doing.
type ComponentStatus string

// The component states, from best to worst.
const (
	// ComponentOK works.
	ComponentOK ComponentStatus = "OK"
	// ComponentDegraded works in part or is recovering (a circuit breaker
	// probing a server that failed).
	ComponentDegraded ComponentStatus = "DEGRADED"
	// ComponentDown does not work; callers get UNAVAILABLE.
	ComponentDown ComponentStatus = "DOWN"
)

// ComponentHealth reports one part of rdev: the database, the Kubernetes
// API server, the project cache.
type ComponentHealth struct {
	Name   string
	Status ComponentStatus
	// Detail says why it is not OK, or what it is.
	Detail string
	// Since is when it entered its status, if known.
	Since time.Time
	// RetryIn is, for a component that is DOWN but will be tried again, how
	// long until then.
	RetryIn time.Duration
	// Essential marks a component without which rdev cannot serve at all,
	// so that it is not ready while the component is DOWN. Others (the
	// Kubernetes API server, behind its circuit breaker) only fail the
	// calls that need them.
	Essential bool
}

// HealthCheck reports the health of one component. Check must be cheap and
// must not block for long: it answers health queries and /readyz.
type HealthCheck interface {
	Check(ctx context.Context) ComponentHealth
}

// HealthCheckFunc adapts a function to HealthCheck.
type HealthCheckFunc func(ctx context.Context) ComponentHealth

// Check calls f.
func (f HealthCheckFunc) Check(ctx context.Context) ComponentHealth { return f(ctx) }

// Health is rdev's state as a whole.
type Health struct {
	// Ready is whether no essential component is DOWN.
	Ready      bool
	Components []ComponentHealth
}

// HealthService reports the health of rdev's components.
type HealthService struct {
	checks []HealthCheck
}

// NewHealthService returns a service over checks, reported in that order.
func NewHealthService(checks ...HealthCheck) *HealthService {
	return &HealthService{checks: checks}
}

// Check runs every check. It needs no scope beyond an authenticated caller
// when asked through the API; /readyz asks it directly.
func (s *HealthService) Check(ctx context.Context) Health {
	h := Health{Ready: true, Components: make([]ComponentHealth, 0, len(s.checks))}
	for _, c := range s.checks {
		ch := c.Check(ctx)
		if ch.Status == ComponentDown && ch.Essential {
			h.Ready = false
		}
		h.Components = append(h.Components, ch)
	}
	return h
}

// Ready returns nil unless an essential component is DOWN, and then
// EUNAVAILABLE naming the first such component and why.
func (s *HealthService) Ready(ctx context.Context) error {
	for _, c := range s.checks {
		if ch := c.Check(ctx); ch.Status == ComponentDown && ch.Essential {
			return Errorf(EUNAVAILABLE, "%s: %s", ch.Name, ch.Detail)
		}
	}
	return nil
}

// WriteHealth follows whether storage takes the writes that must not be
// lost, commands' output and results: as a HealthCheck it is DOWN, and rdev
// not ready, while any writer finds them refused. Its methods do nothing on
// a nil *WriteHealth.
type WriteHealth struct {
	mu      sync.Mutex
	failing int // writers whose last write was refused
	since   time.Time
	lastErr string
	lostN   atomic.Int64
}

// failed notes that a writer's writes began to be refused.
func (w *WriteHealth) failed(now time.Time, err error) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing == 0 {
		w.since = now
	}
	w.failing++
	w.lastErr = ErrorMessage(err)
}

// recovered notes that a writer whose writes were refused is past that:
// its writes are taken again, or it gave up and stopped writing.
func (w *WriteHealth) recovered() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failing = max(w.failing-1, 0)
}

// lost counts n bytes of output given up.
func (w *WriteHealth) lost(n int64) {
	if w != nil {
		w.lostN.Add(n)
	}
}

// Failing returns how many writers find their writes refused now.
func (w *WriteHealth) Failing() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.failing
}

// LostBytes returns how many bytes of output were given up since start.
func (w *WriteHealth) LostBytes() int64 {
	if w == nil {
		return 0
	}
	return w.lostN.Load()
}

// Check reports "storage writes": DOWN while writes are refused.
func (w *WriteHealth) Check(context.Context) ComponentHealth {
	h := ComponentHealth{Name: "storage writes", Status: ComponentOK, Essential: true}
	if w == nil {
		return h
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing > 0 {
		h.Status, h.Since = ComponentDown, w.since
		h.Detail = fmt.Sprintf("%d writers find their writes refused: %s", w.failing, w.lastErr)
	}
	return h
}
