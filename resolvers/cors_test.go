package resolvers

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/domain"
)

const (
	pageOrigin    = "http://localhost:5173"
	foreignOrigin = "https://evil.example"
)

// newCORSServer is a test server whose allowed origin is pageOrigin, with
// the rate limits of limits (none if zero).
func newCORSServer(t *testing.T, limits domain.RateLimits) *testServer {
	t.Helper()
	allow := func(c *Config) {
		c.AllowedOrigin = func(r *http.Request) bool { return r.Header.Get("Origin") == pageOrigin }
	}
	if limits == (domain.RateLimits{}) {
		return newTestServerWith(t, allow)
	}
	l := newCountingLimiter()
	return newTestServerWith(t, allow, func(r *Resolver) { r.RateLimitService = domain.NewRateLimitService(l, l, limits) })
}

// preflightAnswer is the status and headers of a preflight's answer.
type preflightAnswer struct {
	StatusCode int
	Header     http.Header
}

// preflight sends the OPTIONS request a browser sends before a POST with a
// key from origin.
func (ts *testServer) preflight(t *testing.T, origin string) preflightAnswer {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, ts.URL+"/graphql", nil)
	req.Header.Set("Origin", origin)
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return preflightAnswer{res.StatusCode, res.Header}
}

// post sends body as a page on origin would, accepting what Apollo Client
// accepts.
func (ts *testServer) post(t *testing.T, origin, token, body string) gqlResponse {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/graphql-response+json,application/json;q=0.9")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return ts.do(t, req)
}

func corsHeaders(h http.Header) []string {
	var names []string
	for k := range h {
		if strings.HasPrefix(k, "Access-Control-") {
			names = append(names, k)
		}
	}
	return names
}

func TestHandler_CORSPreflight(t *testing.T) {
	ts := newCORSServer(t, domain.RateLimits{RequestsPerSecond: 1, Burst: 1})

	t.Run("Allowed", func(t *testing.T) {
		// More preflights than the burst: none of them is charged.
		for range 3 {
			res := ts.preflight(t, pageOrigin)
			if res.StatusCode != http.StatusNoContent {
				t.Fatalf("status %d, want 204", res.StatusCode)
			}
			for k, want := range map[string]string{
				"Access-Control-Allow-Origin":  pageOrigin,
				"Access-Control-Allow-Methods": "GET, POST, OPTIONS",
				"Access-Control-Max-Age":       "7200",
				"Vary":                         "Origin",
			} {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			allowed := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
			for _, h := range []string{"authorization", "content-type", "accept", "x-request-id", "apollographql-client-name"} {
				if !strings.Contains(allowed, h) {
					t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
				}
			}
			if res.Header.Get("Access-Control-Allow-Credentials") != "" || res.Header.Get("RateLimit-Limit") != "" {
				t.Errorf("credentials allowed or a charge made: %v", res.Header)
			}
		}
		// The request budget is whole after the preflights.
		if r := ts.post(t, pageOrigin, ts.admin, `{"query":"{ __typename }"}`); r.status != http.StatusOK {
			t.Fatalf("the first request after preflights: %d %+v", r.status, r.Errors)
		}
	})

	t.Run("Foreign", func(t *testing.T) {
		res := ts.preflight(t, foreignOrigin)
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("status %d, want 403", res.StatusCode)
		}
		if names := corsHeaders(res.Header); len(names) > 0 {
			t.Errorf("a foreign origin's preflight got %v", names)
		}
	})

	t.Run("NoneAllowed", func(t *testing.T) {
		none := newTestServer(t)
		if res := none.preflight(t, pageOrigin); res.StatusCode != http.StatusForbidden || len(corsHeaders(res.Header)) > 0 {
			t.Errorf("status %d, %v; want 403 without CORS headers", res.StatusCode, corsHeaders(res.Header))
		}
	})

	t.Run("PlainOptions", func(t *testing.T) {
		// Not a preflight (no Access-Control-Request-Method): gqlgen's answer.
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, ts.URL+"/graphql", nil)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK || res.Header.Get("Allow") == "" || len(corsHeaders(res.Header)) > 0 {
			t.Errorf("status %d, headers %v", res.StatusCode, res.Header)
		}
	})
}

// Every answer to an allowed page carries Access-Control-Allow-Origin and
// Access-Control-Expose-Headers, refusals included, so that the page can
// read the error and its headers; a foreign page and a request without an
// Origin get none.
func TestHandler_CORSResponses(t *testing.T) {
	limits := domain.RateLimits{RequestsPerSecond: 1, Burst: 3, ExecutePerMinute: 100, AuthFailuresPerMinute: 100}
	checkAllowed := func(t *testing.T, r gqlResponse, status int, code string) {
		t.Helper()
		if r.status != status || r.code() != code {
			t.Errorf("got %d %q %+v; want %d %q", r.status, r.code(), r.Errors, status, code)
		}
		if got := r.header.Get("Access-Control-Allow-Origin"); got != pageOrigin {
			t.Errorf("Access-Control-Allow-Origin %q", got)
		}
		exposed := r.header.Get("Access-Control-Expose-Headers")
		for _, h := range []string{"X-Request-Id", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "Retry-After"} {
			if !strings.Contains(exposed, h) {
				t.Errorf("Access-Control-Expose-Headers %q lacks %s", exposed, h)
			}
		}
		if r.header.Get("Vary") != "Origin" {
			t.Errorf("Vary %q", r.header.Get("Vary"))
		}
		if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, mediaGraphQLResponse) {
			t.Errorf("Content-Type %q, want %s", ct, mediaGraphQLResponse)
		}
	}

	t.Run("Errors", func(t *testing.T) {
		ts := newCORSServer(t, limits)
		checkAllowed(t, ts.post(t, pageOrigin, ts.admin, `{"query":"{ __typename }"}`), http.StatusOK, "")
		checkAllowed(t, ts.post(t, pageOrigin, "rdev_nope", `{"query":"{ __typename }"}`), http.StatusUnauthorized, domain.EUNAUTHENTICATED)
		checkAllowed(t, ts.post(t, pageOrigin, ts.admin, `{"query":"{ nope }"}`), http.StatusBadRequest, "GRAPHQL_VALIDATION_FAILED")
		checkAllowed(t, ts.post(t, pageOrigin, ts.admin, `{"query":"{ viewer { id } }","variables":{"x":"`+strings.Repeat("a", 5000)+`"}}`),
			http.StatusRequestEntityTooLarge, domain.EINVALID)
		r := ts.post(t, pageOrigin, ts.admin, `{"query":"{ __typename }"}`)
		checkAllowed(t, r, http.StatusTooManyRequests, domain.ERATELIMITED)
		if r.header.Get("Retry-After") == "" || r.header.Get("RateLimit-Remaining") != "0" {
			t.Errorf("a 429 without its headers: %v", r.header)
		}
	})

	t.Run("Unavailable", func(t *testing.T) {
		ts := newCORSServer(t, domain.RateLimits{})
		checkAllowed(t, ts.post(t, pageOrigin, ts.admin, `{"query":"{ project(id: \"down\") { id } }"}`), http.StatusServiceUnavailable, domain.EUNAVAILABLE)
	})

	t.Run("ForeignAndNoOrigin", func(t *testing.T) {
		ts := newCORSServer(t, domain.RateLimits{})
		for _, origin := range []string{foreignOrigin, ""} {
			for _, token := range []string{ts.admin, "rdev_nope"} {
				r := ts.post(t, origin, token, `{"query":"{ __typename }"}`)
				if names := corsHeaders(r.header); len(names) > 0 {
					t.Errorf("Origin %q, status %d: got %v", origin, r.status, names)
				}
				if want := map[bool]string{true: "Origin", false: ""}[origin != ""]; r.header.Get("Vary") != want {
					t.Errorf("Origin %q: Vary %q, want %q", origin, r.header.Get("Vary"), want)
				}
			}
		}
	})

	t.Run("GET", func(t *testing.T) {
		ts := newCORSServer(t, domain.RateLimits{})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/graphql?query=%7B__typename%7D", nil)
		req.Header.Set("Origin", pageOrigin)
		req.Header.Set("Authorization", "Bearer "+ts.admin)
		req.Header.Set("Accept", mediaGraphQLResponse)
		checkAllowed(t, ts.do(t, req), http.StatusOK, "")
	})
}
