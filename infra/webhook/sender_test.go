package webhook

import (
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/rdev-hq/rdev/domain"
)

// loopbackSender reaches receivers on loopback, which a production sender
// refuses, trusting srv's certificate when it has one.
func loopbackSender(t *testing.T, srv *httptest.Server, opts Options) *Sender {
	t.Helper()
	opts.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	opts.AllowHTTP = true
	if srv != nil && srv.TLS != nil {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		opts.TLS = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		opts.TLS.RootCAs = pool
	}
	s := NewSender(opts)
	t.Cleanup(s.Close)
	return s
}

func attempt(url, secret string, body string) domain.WebhookAttempt {
	return domain.WebhookAttempt{URL: url, MessageID: "msg_2Ld7", Timestamp: time.Now(), Body: []byte(body), Secrets: []string{secret}}
}

func TestSender_Delivered(t *testing.T) {
	secret := domain.NewWebhookSecret()
	body := `{"type":"ping","timestamp":"2026-12-01T12:00:00Z","data":{}}`
	got := make(chan error, 1)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case r.Method != http.MethodPost, r.Header.Get("Content-Type") != "application/json",
			!strings.HasPrefix(r.Header.Get("User-Agent"), "rdev-webhooks/"), string(b) != body:
			got <- errorsf("request: %s %q %q %q", r.Method, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"), b)
		default:
			got <- verifier(t, secret).Verify(b, r.Header)
		}
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "thanks")
	}))
	defer srv.Close()
	resp := loopbackSender(t, srv, Options{}).Send(t.Context(), attempt(srv.URL+"/hook", secret, body))
	if err := <-got; err != nil {
		t.Fatalf("receiver: %v", err)
	}
	if resp.Err != nil || resp.StatusCode != 202 || resp.Outcome() != domain.WebhookDelivered {
		t.Fatalf("response %+v", resp)
	}
	if resp.ResponseExcerpt != "thanks" || resp.RequestExcerpt != body || resp.Latency <= 0 {
		t.Errorf("excerpts %q / %q, latency %v", resp.RequestExcerpt, resp.ResponseExcerpt, resp.Latency)
	}
}

func errorsf(format string, args ...any) error {
	return domain.Errorf(domain.EINVALID, format, args...)
}

func TestSender_Outcomes(t *testing.T) {
	var redirected atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		redirected.Add(1)
		w.WriteHeader(200)
	}))
	defer target.Close()
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, target.URL+"/", http.StatusFound)
		case "/gone":
			w.WriteHeader(http.StatusGone)
		case "/busy":
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/down":
			w.Header().Set("Retry-After", date)
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/huge":
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, strings.Repeat("é", 4000))
		case "/slow":
			time.Sleep(time.Second)
			w.WriteHeader(200)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()
	s := loopbackSender(t, srv, Options{Timeout: 300 * time.Millisecond, ExcerptBytes: 101})
	secret := domain.NewWebhookSecret()
	send := func(path string) domain.WebhookResponse {
		return s.Send(t.Context(), attempt(srv.URL+path, secret, "{}"))
	}

	if r := send("/redirect"); r.StatusCode != http.StatusFound || r.Outcome() != domain.WebhookRetry || redirected.Load() != 0 {
		t.Errorf("redirect: %+v, target hit %d times; want a 302 failure, not followed", r, redirected.Load())
	}
	if r := send("/gone"); r.Outcome() != domain.WebhookGone {
		t.Errorf("410: outcome %v, want gone", r.Outcome())
	}
	if r := send("/busy"); r.Outcome() != domain.WebhookRetry || r.RetryAfter != 2*time.Minute {
		t.Errorf("429: %+v, want a retry after 2m", r)
	}
	if r := send("/down"); r.RetryAfter < 80*time.Second || r.RetryAfter > 90*time.Second {
		t.Errorf("503 with a date: retry after %v, want about 90s", r.RetryAfter)
	}
	r := send("/huge")
	if r.StatusCode != 500 || r.Outcome() != domain.WebhookRetry || len(r.ResponseExcerpt) > 101 || !utf8.ValidString(r.ResponseExcerpt) ||
		!strings.HasPrefix(r.ResponseExcerpt, "éé") || strings.ContainsRune(r.ResponseExcerpt, utf8.RuneError) {
		t.Errorf("500 with a long body: status %d, excerpt of %d bytes %q", r.StatusCode, len(r.ResponseExcerpt), r.ResponseExcerpt)
	}
	if r := send("/slow"); r.Err == nil || r.StatusCode != 0 || r.Outcome() != domain.WebhookRetry {
		t.Errorf("slow receiver: %+v; want a timeout", r)
	}
	if r := send("/"); r.Err != nil || r.StatusCode != 204 || r.Outcome() != domain.WebhookDelivered {
		t.Errorf("204: %+v", r)
	}
}

func TestSender_HTTPNeedsPermission(t *testing.T) {
	s := NewSender(Options{})
	defer s.Close()
	r := s.Send(t.Context(), attempt("http://hooks.example.com/x", domain.NewWebhookSecret(), "{}"))
	if domain.ErrorCode(r.Err) != domain.EINVALID {
		t.Fatalf("http URL without AllowHTTP: %v", r.Err)
	}
}

// TestDialer_Control checks the socket hook on its own: whatever resolved an
// address, a refused one is never connected to.
func TestDialer_Control(t *testing.T) {
	d := newDialer(&Guard{}, nil, time.Second)
	for _, a := range []string{"127.0.0.1:80", "[::1]:443", "169.254.169.254:80", "[::ffff:10.0.0.1]:80"} {
		if err := d.control("tcp", a, nil); err == nil {
			t.Errorf("control(%s) allowed it", a)
		}
	}
	if err := d.control("tcp", "93.184.216.34:443", nil); err != nil {
		t.Errorf("control(public): %v", err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"": 0, "0": 0, "-5": 0, "30": 30 * time.Second, "nonsense": 0,
		"999999999":                     domain.MaxWebhookRetryAfter,
		"Tue, 01 Dec 2026 12:05:00 GMT": 5 * time.Minute,
		"Tue, 01 Dec 2026 11:00:00 GMT": 0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func FuzzRetryAfter(f *testing.F) {
	for _, s := range []string{"", "120", "-1", "Tue, 01 Dec 2026 12:05:00 GMT", "Monday", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		if d := retryAfter(v, now); d < 0 || d > domain.MaxWebhookRetryAfter {
			t.Fatalf("retryAfter(%q) = %v, outside [0, %v]", v, d, domain.MaxWebhookRetryAfter)
		}
	})
}

func FuzzExcerpt(f *testing.F) {
	for _, s := range []string{"", "plain", "é", "\xff\xfe", strings.Repeat("€", 40), "ab\xe2\x82"} {
		f.Add([]byte(s), 7)
	}
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		got := excerpt(b, n)
		if !utf8.ValidString(got) {
			t.Fatalf("excerpt(%q, %d) = %q, not valid UTF-8", b, n, got)
		}
		if utf8.Valid(b) && len(b) <= n && got != string(b) {
			t.Fatalf("excerpt(%q, %d) = %q, want it whole", b, n, got)
		}
		if utf8.Valid(b) && len(got) > n {
			t.Fatalf("excerpt(%q, %d) is %d bytes", b, n, len(got))
		}
	})
}
