package kube

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/httpstream"

	"github.com/rdev-hq/rdev/domain"
)

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func answer(code int) roundTripFunc {
	return func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: code, Body: io.NopCloser(strings.NewReader(""))}, nil
	}
}

func fail(err error) roundTripFunc {
	return func(*http.Request) (*http.Response, error) { return nil, err }
}

// send makes one request through rt and returns the response's status (0
// for none) and the error.
func send(ctx context.Context, rt http.RoundTripper) (int, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://api.invalid/api", nil)
	resp, err := rt.RoundTrip(req)
	if resp == nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, err
}

func TestBreaker_Counts(t *testing.T) {
	refused := &httpstream.UpgradeFailureError{Cause: apierrors.NewForbidden(podsResource, "p", errors.New("no"))}
	upgrade500 := &httpstream.UpgradeFailureError{Cause: apierrors.NewInternalError(errors.New("boom"))}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name  string
		rt    roundTripFunc
		ctx   context.Context
		opens bool
	}{
		{"500", answer(500), context.Background(), true},
		{"503", answer(503), context.Background(), true},
		{"429", answer(429), context.Background(), true},
		{"DialRefused", fail(syscall.ECONNREFUSED), context.Background(), true},
		{"Upgrade500", fail(upgrade500), context.Background(), true},
		{"200", answer(200), context.Background(), false},
		{"101", answer(101), context.Background(), false},
		{"403", answer(403), context.Background(), false},
		{"404", answer(404), context.Background(), false},
		{"401", answer(401), context.Background(), false},
		{"UpgradeForbidden", fail(refused), context.Background(), false},
		{"CallerCancelled", fail(context.Canceled), cancelled, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBreaker("test", BreakerSettings{Failures: 3, OpenFor: time.Minute}, nil)
			rt := b.Wrap(tt.rt)
			for range 3 {
				code, err := send(tt.ctx, rt)
				if tt.rt != nil && code == 0 && err == nil {
					t.Fatal("no response and no error")
				}
			}
			if got := b.State() == "open"; got != tt.opens {
				t.Fatalf("state %s after 3 × %s; want open: %v", b.State(), tt.name, tt.opens)
			}
			if !tt.opens {
				return
			}
			start := time.Now()
			_, err := send(context.Background(), b.Wrap(answer(200)))
			if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(domain.ErrorMessage(err), "retry in 60 s") {
				t.Errorf("while open: %v, want EUNAVAILABLE with a retry hint", err)
			}
			if d := time.Since(start); d > 100*time.Millisecond {
				t.Errorf("an open breaker took %v to refuse", d)
			}
			if h := b.Health(); h.State != "open" || h.RetryIn <= 50*time.Second || h.ConsecutiveFailures != 0 {
				t.Errorf("Health() = %+v", h)
			}
		})
	}
}

func TestBreaker_HandsBackResponses(t *testing.T) {
	b := NewBreaker("test", BreakerSettings{}, nil)
	code, err := send(context.Background(), b.Wrap(answer(503)))
	if err != nil || code != 503 {
		t.Errorf("503 came back as %d, %v; want the response itself", code, err)
	}
	_, err = send(context.Background(), b.Wrap(fail(syscall.ECONNREFUSED)))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dial error came back as %v; want it wrapped", err)
	}
}

func TestBreaker_HalfOpenRecovers(t *testing.T) {
	b := NewBreaker("test", BreakerSettings{Failures: 1, OpenFor: 200 * time.Millisecond}, nil)
	ok, down := b.Wrap(answer(200)), b.Wrap(answer(500))
	_, _ = send(context.Background(), down)
	if b.State() != "open" {
		t.Fatalf("state %s, want open", b.State())
	}
	time.Sleep(250 * time.Millisecond)
	if b.State() != "half-open" {
		t.Fatalf("state %s, want half-open", b.State())
	}
	// A failed probe opens it again.
	_, _ = send(context.Background(), down)
	if b.State() != "open" {
		t.Fatalf("after a failed probe: %s, want open", b.State())
	}
	time.Sleep(250 * time.Millisecond)
	if _, err := send(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
	if b.State() != "closed" {
		t.Errorf("after a good probe: %s, want closed", b.State())
	}
}
