package webhook

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/rdev-hq/rdev/domain"
)

// signed returns the headers rdev sends for body, signed with secrets.
func signed(t *testing.T, id string, ts time.Time, body []byte, secrets ...string) http.Header {
	t.Helper()
	h := http.Header{}
	if err := setHeaders(h, domain.WebhookAttempt{MessageID: id, Timestamp: ts, Body: body, Secrets: secrets}); err != nil {
		t.Fatal(err)
	}
	return h
}

func verifier(t *testing.T, secret string) *standardwebhooks.Webhook {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

// TestSign_ReferenceVerifier checks rdev's signatures with the Standard
// Webhooks reference library: what rdev signs verifies, and every kind of
// tampering is refused.
func TestSign_ReferenceVerifier(t *testing.T) {
	secret, other := domain.NewWebhookSecret(), domain.NewWebhookSecret()
	body := []byte(`{"type":"command.finished","timestamp":"2026-12-01T12:00:00Z","data":{"id":"c1","exitCode":0}}`)
	now := time.Now()

	t.Run("OK", func(t *testing.T) {
		if err := verifier(t, secret).Verify(body, signed(t, "msg_1", now, body, secret)); err != nil {
			t.Fatalf("the reference verifier refused rdev's signature: %v", err)
		}
	})
	t.Run("Rotation", func(t *testing.T) {
		// During a rotation both secrets sign; a receiver on either verifies.
		h := signed(t, "msg_2", now, body, secret, other)
		if n := len(strings.Fields(h.Get(HeaderSignature))); n != 2 {
			t.Fatalf("%d signatures, want 2: %q", n, h.Get(HeaderSignature))
		}
		for _, s := range []string{secret, other} {
			if err := verifier(t, s).Verify(body, h); err != nil {
				t.Errorf("verifying with one of two secrets: %v", err)
			}
		}
	})
	for _, tc := range []struct {
		name string
		with func() ([]byte, http.Header, string)
		want error
	}{
		{"ErrTamperedBody", func() ([]byte, http.Header, string) {
			return []byte(strings.Replace(string(body), `"exitCode":0`, `"exitCode":1`, 1)), signed(t, "msg_3", now, body, secret), secret
		}, standardwebhooks.ErrNoMatchingSignature},
		{"ErrWrongSecret", func() ([]byte, http.Header, string) {
			return body, signed(t, "msg_4", now, body, other), secret
		}, standardwebhooks.ErrNoMatchingSignature},
		{"ErrOtherID", func() ([]byte, http.Header, string) {
			h := signed(t, "msg_5", now, body, secret)
			h.Set(HeaderID, "msg_6")
			return body, h, secret
		}, standardwebhooks.ErrNoMatchingSignature},
		{"ErrStaleTimestamp", func() ([]byte, http.Header, string) {
			return body, signed(t, "msg_7", now.Add(-10*time.Minute), body, secret), secret
		}, standardwebhooks.ErrMessageTooOld},
		{"ErrMovedTimestamp", func() ([]byte, http.Header, string) {
			h := signed(t, "msg_8", now.Add(-time.Minute), body, secret)
			h.Set(HeaderTimestamp, signed(t, "msg_8", now, body, secret).Get(HeaderTimestamp))
			return body, h, secret
		}, standardwebhooks.ErrNoMatchingSignature},
		{"ErrMissingSignature", func() ([]byte, http.Header, string) {
			h := signed(t, "msg_9", now, body, secret)
			h.Del(HeaderSignature)
			return body, h, secret
		}, standardwebhooks.ErrRequiredHeaders},
		{"ErrMissingID", func() ([]byte, http.Header, string) {
			h := signed(t, "msg_10", now, body, secret)
			h.Del(HeaderID)
			return body, h, secret
		}, standardwebhooks.ErrRequiredHeaders},
		{"ErrMissingTimestamp", func() ([]byte, http.Header, string) {
			h := signed(t, "msg_11", now, body, secret)
			h.Del(HeaderTimestamp)
			return body, h, secret
		}, standardwebhooks.ErrRequiredHeaders},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, h, s := tc.with()
			err := verifier(t, s).Verify(b, h)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSetHeaders_BadSecret(t *testing.T) {
	for _, secrets := range [][]string{nil, {"whsec_short"}, {"nope_" + strings.Repeat("A", 44)}, {"whsec_!!!"}} {
		err := setHeaders(http.Header{}, domain.WebhookAttempt{MessageID: "m", Timestamp: time.Now(), Secrets: secrets})
		if domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("secrets %q: %v, want %s", secrets, err, domain.EINVALID)
		}
	}
}

// TestSign_KnownVector pins the signature of the specification's example:
// the same bytes must always sign the same way.
func TestSign_KnownVector(t *testing.T) {
	key, err := domain.DecodeWebhookSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := Sign([][]byte{key}, "msg_p5jXN8AQM9LWM0D4loKWxJek", time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}
