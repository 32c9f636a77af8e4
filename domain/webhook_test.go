package domain

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWebhookSecret(t *testing.T) {
	a, b := NewWebhookSecret(), NewWebhookSecret()
	if a == b || !strings.HasPrefix(a, WebhookSecretPrefix) {
		t.Fatalf("secrets %q and %q", a, b)
	}
	key, err := DecodeWebhookSecret(a)
	if err != nil || len(key) != WebhookSecretBytes {
		t.Fatalf("DecodeWebhookSecret: %d bytes, %v", len(key), err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_c2hvcnQ=", strings.TrimPrefix(a, WebhookSecretPrefix), "whsec_***"} {
		if _, err := DecodeWebhookSecret(bad); ErrorCode(err) != EINVALID {
			t.Errorf("DecodeWebhookSecret(%q): %v, want %s", bad, err, EINVALID)
		}
	}
}

func TestWebhookResponse_Outcome(t *testing.T) {
	for _, tc := range []struct {
		r    WebhookResponse
		want WebhookOutcome
	}{
		{WebhookResponse{StatusCode: 200}, WebhookDelivered},
		{WebhookResponse{StatusCode: 204}, WebhookDelivered},
		{WebhookResponse{StatusCode: 299}, WebhookDelivered},
		{WebhookResponse{StatusCode: 301}, WebhookRetry},
		{WebhookResponse{StatusCode: 302}, WebhookRetry},
		{WebhookResponse{StatusCode: 400}, WebhookRetry},
		{WebhookResponse{StatusCode: 410}, WebhookGone},
		{WebhookResponse{StatusCode: 429}, WebhookRetry},
		{WebhookResponse{StatusCode: 500}, WebhookRetry},
		{WebhookResponse{StatusCode: 503}, WebhookRetry},
		{WebhookResponse{Err: errors.New("refused")}, WebhookRetry},
		{WebhookResponse{StatusCode: 200, Err: errors.New("body cut")}, WebhookRetry},
	} {
		if got := tc.r.Outcome(); got != tc.want {
			t.Errorf("Outcome(%+v) = %v, want %v", tc.r, got, tc.want)
		}
	}
}

func TestWebhookRetryPolicy_Next(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	mid := WebhookRetryPolicy{Schedule: DefaultWebhookSchedule, Jitter: 0.2, Rand: func() float64 { return 0.5 }}

	t.Run("Schedule", func(t *testing.T) {
		var total time.Duration
		for i, want := range DefaultWebhookSchedule {
			at, ok := mid.Next(i+1, now, WebhookResponse{StatusCode: 500})
			if !ok || at.Sub(now) != want {
				t.Fatalf("after attempt %d: %v, %v; want %v", i+1, at.Sub(now), ok, want)
			}
			total += want
		}
		if total < 70*time.Hour || total > 80*time.Hour {
			t.Errorf("the schedule spans %v, want about 3 days", total)
		}
		if _, ok := mid.Next(len(DefaultWebhookSchedule)+1, now, WebhookResponse{}); ok {
			t.Error("an attempt after the last one of the schedule")
		}
		if _, ok := mid.Next(0, now, WebhookResponse{}); ok {
			t.Error("Next(0) gave an attempt")
		}
	})
	t.Run("Jitter", func(t *testing.T) {
		for _, r := range []float64{0, 0.999999} {
			p := WebhookRetryPolicy{Schedule: DefaultWebhookSchedule, Jitter: 0.2, Rand: func() float64 { return r }}
			at, _ := p.Next(2, now, WebhookResponse{})
			if d := at.Sub(now); d < 4*time.Minute || d > 6*time.Minute {
				t.Errorf("rand %v: wait %v, want within 20%% of 5m", r, d)
			}
		}
		seen := map[time.Duration]bool{}
		for range 20 {
			at, _ := DefaultWebhookRetryPolicy.Next(3, now, WebhookResponse{})
			seen[at.Sub(now)] = true
		}
		if len(seen) < 2 {
			t.Error("the default policy does not spread retries")
		}
	})
	t.Run("RetryAfter", func(t *testing.T) {
		at, _ := mid.Next(1, now, WebhookResponse{StatusCode: 429, RetryAfter: time.Hour})
		if at.Sub(now) != time.Hour {
			t.Errorf("Retry-After 1h after attempt 1: wait %v", at.Sub(now))
		}
		at, _ = mid.Next(5, now, WebhookResponse{StatusCode: 503, RetryAfter: time.Second})
		if at.Sub(now) != 5*time.Hour {
			t.Errorf("a shorter Retry-After than the schedule: wait %v, want 5h", at.Sub(now))
		}
		at, _ = mid.Next(1, now, WebhookResponse{RetryAfter: 100 * time.Hour})
		if at.Sub(now) != MaxWebhookRetryAfter {
			t.Errorf("Retry-After beyond the cap: wait %v", at.Sub(now))
		}
	})
}

func FuzzDecodeWebhookSecret(f *testing.F) {
	for _, s := range []string{NewWebhookSecret(), "whsec_", "whsec_c2hvcnQ=", "", "whsec_" + strings.Repeat("A", 43) + "="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		key, err := DecodeWebhookSecret(s)
		if err != nil {
			if ErrorCode(err) != EINVALID || key != nil {
				t.Fatalf("DecodeWebhookSecret(%q) = %x, %v", s, key, err)
			}
			return
		}
		if len(key) < 24 || !strings.HasPrefix(s, WebhookSecretPrefix) {
			t.Fatalf("accepted %q as a %d-byte key", s, len(key))
		}
	})
}
