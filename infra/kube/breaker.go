package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"

	"github.com/rdev-hq/rdev/domain"
)

// BreakerSettings configures the circuit breaker in front of one API server.
// Zero fields take the defaults named beside them.
type BreakerSettings struct {
	// Failures is how many API failures in a row open the breaker (5).
	Failures int
	// OpenFor is how long the breaker stays open before it lets a probe
	// request through (half-open) (30 s).
	OpenFor time.Duration
	// Probes is how many requests may pass while half-open; that many
	// successes in a row close it again (1).
	Probes int
}

func (s BreakerSettings) withDefaults() BreakerSettings {
	if s.Failures <= 0 {
		s.Failures = 5
	}
	if s.OpenFor <= 0 {
		s.OpenFor = 30 * time.Second
	}
	if s.Probes <= 0 {
		s.Probes = 1
	}
	return s
}

// Breaker is the circuit breaker in front of one Kubernetes API server. It
// sits in the HTTP transport of every client rdev makes for that server (the
// informers, exec and the kill that follows a cancel), so it sees each
// request and its response.
//
// It counts as failures what says the API server is unwell or unreachable:
// dial and TLS errors, timeouts, connection resets, and responses 5xx and 429
// (also when they answer a WebSocket or SPDY upgrade). Everything else counts
// as a success, 401, 403 and 404 included, and a request whose own context
// ended is not counted at all. A command's exit status never reaches the
// breaker: it travels inside the exec stream, after the upgrade succeeded.
//
// While it is open, requests fail at once with an error for which
// domain.ErrorCode returns EUNAVAILABLE and whose message says when the next
// attempt will be let through.
type Breaker struct {
	name     string
	settings BreakerSettings
	cb       *gobreaker.CircuitBreaker[*http.Response]
	log      *slog.Logger

	mu       sync.Mutex
	openedAt time.Time
	changed  time.Time
}

// NewBreaker returns a closed breaker named name (the API server's host, in
// logs) that logs its state changes to log (slog.Default() if nil).
func NewBreaker(name string, s BreakerSettings, log *slog.Logger) *Breaker {
	if log == nil {
		log = slog.Default()
	}
	s = s.withDefaults()
	b := &Breaker{name: name, settings: s, log: log, changed: time.Now()}
	//nolint:bodyclose // the breaker hands each response back to its caller, who closes it
	b.cb = gobreaker.NewCircuitBreaker[*http.Response](gobreaker.Settings{
		Name:        name,
		MaxRequests: uint32(min(s.Probes, math.MaxUint32)),
		Timeout:     s.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= uint32(min(s.Failures, math.MaxUint32))
		},
		IsExcluded:   func(err error) bool { return errors.Is(err, errCallerGone) },
		IsSuccessful: func(err error) bool { return err == nil || errors.Is(err, errAnswered) },
		// Called with the breaker's lock held: it must not call back into cb.
		OnStateChange: b.stateChanged,
	})
	return b
}

// errCallerGone marks a request that ended because its own context did.
var errCallerGone = errors.New("kube: request context ended")

// serverFailure marks a response that counts against the API server; the
// response itself is still handed to the caller.
type serverFailure struct{ status int }

func (e *serverFailure) Error() string { return fmt.Sprintf("kube: API server answered %d", e.status) }

func (b *Breaker) stateChanged(_ string, from, to gobreaker.State) {
	now := time.Now()
	b.mu.Lock()
	b.changed = now
	if to == gobreaker.StateOpen {
		b.openedAt = now
	}
	b.mu.Unlock()
	level := slog.LevelInfo
	if to == gobreaker.StateOpen {
		level = slog.LevelWarn
	}
	b.log.Log(context.Background(), level, "kubernetes API circuit breaker changed state",
		"cluster", b.name, "from", from.String(), "to", to.String())
}

// State returns "closed", "open" or "half-open".
func (b *Breaker) State() string { return b.cb.State().String() }

// BreakerHealth is a snapshot of a Breaker, ready to export as a metric or
// a health field.
type BreakerHealth struct {
	// Cluster names the API server.
	Cluster string
	// State is "closed", "open" or "half-open".
	State string
	// Since is when the breaker entered State.
	Since time.Time
	// RetryIn is, while open, how long until a probe is let through.
	RetryIn time.Duration
	// ConsecutiveFailures counts the failures since the last success.
	ConsecutiveFailures int
}

// Health returns the breaker's state now.
func (b *Breaker) Health() BreakerHealth {
	st := b.cb.State()
	counts := b.cb.Counts()
	b.mu.Lock()
	defer b.mu.Unlock()
	h := BreakerHealth{
		Cluster:             b.name,
		State:               st.String(),
		Since:               b.changed,
		ConsecutiveFailures: int(counts.ConsecutiveFailures),
	}
	if st == gobreaker.StateOpen {
		h.RetryIn = max(0, time.Until(b.openedAt.Add(b.settings.OpenFor)))
	}
	return h
}

// openError returns the UNAVAILABLE error callers get while the breaker is
// open or its probes are taken.
func (b *Breaker) openError() error {
	h := b.Health()
	secs := int(math.Ceil(h.RetryIn.Seconds()))
	if h.State != "open" {
		return domain.Errorf(domain.EUNAVAILABLE, "the Kubernetes API server %s is recovering from failures and is being probed; retry in a second", b.name)
	}
	return domain.Errorf(domain.EUNAVAILABLE, "the Kubernetes API server %s is failing; calls are paused (circuit breaker open); retry in %d s", b.name, max(secs, 1))
}

// Wrap returns rt with the breaker in front of it, for rest.Config's
// WrapTransport.
func (b *Breaker) Wrap(rt http.RoundTripper) http.RoundTripper {
	return &breakerTransport{b: b, next: rt}
}

type breakerTransport struct {
	b    *Breaker
	next http.RoundTripper
}

// RoundTrip sends req unless the breaker is open, and records the outcome.
func (t *breakerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.b.cb.Execute(func() (*http.Response, error) {
		resp, err := t.next.RoundTrip(req)
		if cerr := classify(req, resp, err); cerr != nil {
			// The real response or error goes back to the caller below.
			return resp, errors.Join(cerr, err)
		}
		return resp, err
	})
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return nil, t.b.openError()
	case err != nil:
		var sf *serverFailure
		if errors.As(err, &sf) && resp != nil {
			return resp, nil
		}
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return nil, unwrapClassified(err)
	}
	return resp, nil
}

// classify returns errCallerGone for a request whose context ended, a
// *serverFailure for a response that counts as a failure, nil for a success
// and, for a transport error, errTransport.
func classify(req *http.Request, resp *http.Response, err error) error {
	if err != nil {
		if req.Context().Err() != nil {
			return errCallerGone
		}
		if status, ok := upgradeStatus(err); ok {
			if failingStatus(status) {
				return &serverFailure{status: status}
			}
			return errAnswered
		}
		return errTransport
	}
	if resp != nil && failingStatus(resp.StatusCode) {
		return &serverFailure{status: resp.StatusCode}
	}
	return nil
}

var (
	// errTransport marks a request that got no answer (dial, TLS, reset).
	errTransport = errors.New("kube: API server unreachable")
	// errAnswered marks an error that carries an answer of the server that
	// does not count against it (a refused upgrade with a 4xx status).
	errAnswered = errors.New("kube: API server answered")
)

// unwrapClassified strips the markers classify added, so callers see the
// original error (still matched by errors.Is/As through the join).
func unwrapClassified(err error) error {
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		errs := j.Unwrap()
		if len(errs) == 2 {
			if errors.Is(errs[0], errAnswered) {
				return errs[1]
			}
			return fmt.Errorf("%w: %w", errs[0], errs[1])
		}
	}
	return err
}

// upgradeStatus returns the HTTP status carried by a refused WebSocket
// upgrade, which client-go reports as an error rather than a response.
func upgradeStatus(err error) (int, bool) {
	if !httpstream.IsUpgradeFailure(err) {
		return 0, false
	}
	if st, ok := apiStatus(err); ok {
		return int(st.Code), true
	}
	return 0, false
}

// apiStatus returns the status from the API server that err carries, also
// inside a refused upgrade (whose error type does not unwrap).
func apiStatus(err error) (metav1.Status, bool) {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Code != 0 {
		return se.Status(), true
	}
	var uf *httpstream.UpgradeFailureError
	if errors.As(err, &uf) && uf.Cause != nil {
		if errors.As(uf.Cause, &se) && se.Status().Code != 0 {
			return se.Status(), true
		}
	}
	return metav1.Status{}, false
}

func failingStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests
}

// isTransportError reports whether err says the API server could not be
// reached at all.
func isTransportError(err error) bool {
	if errors.Is(err, errTransport) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne)
}
