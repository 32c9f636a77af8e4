package resolvers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// countingLimiter is a domain.RateLimiter that counts charges per budget and
// never forgets them: enough to see what the edge charges and how it answers
// a refusal.
type countingLimiter struct {
	mu    sync.Mutex
	used  map[string]int
	takes map[string]int // charges asked for, taken or not, by budget name
}

func newCountingLimiter() *countingLimiter {
	return &countingLimiter{used: map[string]int{}, takes: map[string]int{}}
}

func (l *countingLimiter) Take(_ context.Context, b domain.Budget, n int) (domain.Quota, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	taken := n > 0 && l.used[b.Key()]+n <= b.Limit
	if taken {
		l.used[b.Key()] += n
	}
	if n > 0 {
		l.takes[b.Name] += n
	}
	q := domain.Quota{Limit: b.Limit, Remaining: max(b.Limit-l.used[b.Key()], 0), Reset: time.Now().Add(b.Window)}
	return q, taken, nil
}

func (l *countingLimiter) spend(key string, n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.used[key] += n
}

func (l *countingLimiter) asked(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.takes[name]
}

func newLimitedServer(t *testing.T, limits domain.RateLimits) (*testServer, *countingLimiter) {
	t.Helper()
	l := newCountingLimiter()
	ts := newTestServer(t, func(r *Resolver) {
		r.RateLimitService = domain.NewRateLimitService(l, l, limits)
	})
	return ts, l
}

func keyID(token string) string { return strings.Split(token, "_")[1] }

func TestHandler_RateLimit(t *testing.T) {
	limits := domain.RateLimits{RequestsPerSecond: 1, Burst: 3, ExecutePerMinute: 2, AuthFailuresPerMinute: 3}

	t.Run("HeadersAnd429", func(t *testing.T) {
		ts, _ := newLimitedServer(t, limits)
		for i := range 3 {
			r := ts.query(t, ts.admin, `{ __typename }`, nil)
			if r.status != http.StatusOK || len(r.Errors) > 0 {
				t.Fatalf("request %d: status %d, %+v", i+1, r.status, r.Errors)
			}
			if got := r.header.Get("RateLimit-Limit"); got != "3" {
				t.Errorf("request %d: RateLimit-Limit %q, want 3", i+1, got)
			}
			if got, want := r.header.Get("RateLimit-Remaining"), strconv.Itoa(2-i); got != want {
				t.Errorf("request %d: RateLimit-Remaining %q, want %s", i+1, got, want)
			}
			if got := r.header.Get("RateLimit-Reset"); got != "3" {
				t.Errorf("request %d: RateLimit-Reset %q, want 3 (seconds)", i+1, got)
			}
			if got := r.header.Get("Retry-After"); got != "" {
				t.Errorf("request %d: Retry-After %q on an accepted request", i+1, got)
			}
		}
		r := ts.query(t, ts.admin, `{ __typename }`, nil)
		if r.status != http.StatusTooManyRequests || r.code() != domain.ERATELIMITED {
			t.Fatalf("over the limit: status %d, %+v; want 429 RATE_LIMITED", r.status, r.Errors)
		}
		if got := r.Errors[0].Extensions["retryAfterSeconds"]; got != float64(3) {
			t.Errorf("retryAfterSeconds = %v, want 3", got)
		}
		if got := r.header.Get("Retry-After"); got != "3" {
			t.Errorf("Retry-After %q, want 3", got)
		}
		if got := r.header.Get("RateLimit-Remaining"); got != "0" {
			t.Errorf("RateLimit-Remaining %q, want 0", got)
		}
		if r.Data != nil {
			t.Errorf("data %s in a refused request", r.Data)
		}
		// Another key has a budget of its own.
		other := ts.createKey(t, "other", domain.ScopeProjectsRead)
		if r := ts.query(t, other, `{ __typename }`, nil); r.status != http.StatusOK {
			t.Errorf("another key: status %d, %+v", r.status, r.Errors)
		}
	})

	t.Run("KeyRateLimit", func(t *testing.T) {
		ts, _ := newLimitedServer(t, limits)
		r := ts.query(t, ts.admin, `mutation { createAPIKey(input: {name: "fast", scopes: [PROJECTS_READ], rateLimit: 4}) { token } }`, nil)
		var d struct{ CreateAPIKey struct{ Token string } }
		if err := json.Unmarshal(r.Data, &d); err != nil || d.CreateAPIKey.Token == "" {
			t.Fatalf("createAPIKey: %s %+v", r.Data, r.Errors)
		}
		// 4 per second over the 3-second window.
		if got := ts.query(t, d.CreateAPIKey.Token, `{ __typename }`, nil).header.Get("RateLimit-Limit"); got != "12" {
			t.Errorf("RateLimit-Limit of a key with rateLimit 4 = %q, want 12", got)
		}
	})

	t.Run("AnonymousNotCharged", func(t *testing.T) {
		ts, l := newLimitedServer(t, limits)
		for range 5 {
			r := ts.query(t, "", `{ __typename }`, nil)
			if r.status != http.StatusOK || r.header.Get("RateLimit-Limit") != "" {
				t.Fatalf("anonymous: status %d, headers %v", r.status, r.header)
			}
		}
		if n := l.asked("requests"); n != 0 {
			t.Errorf("%d anonymous requests charged", n)
		}
	})

	// Each executeCommand field is charged, aliases included; refused ones
	// say when to retry, in the error and in Retry-After.
	t.Run("ExecutePerField", func(t *testing.T) {
		ts, l := newLimitedServer(t, limits)
		l.spend("execute:"+keyID(ts.admin), limits.ExecutePerMinute)
		r := ts.query(t, ts.admin, `mutation {
			a: executeCommand(input: {projectId: "alpha", argv: ["true"]}) { command { id } }
			b: executeCommand(input: {projectId: "alpha", argv: ["true"]}) { command { id } }
			c: executeCommand(input: {projectId: "alpha", argv: ["true"]}) { command { id } }
		}`, nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d, want 200 (the request itself was accepted)", r.status)
		}
		if n := l.asked("execute"); n != 3 {
			t.Errorf("3 aliases charged %d executeCommand calls", n)
		}
		if len(r.Errors) != 3 {
			t.Fatalf("errors %+v, want one per alias", r.Errors)
		}
		for _, e := range r.Errors {
			if e.Extensions["code"] != domain.ERATELIMITED || e.Extensions["retryAfterSeconds"] != float64(60) {
				t.Errorf("error %+v, want RATE_LIMITED with retryAfterSeconds 60", e)
			}
		}
		if got := r.header.Get("Retry-After"); got != "60" {
			t.Errorf("Retry-After %q, want 60", got)
		}
		if got := r.header.Get("RateLimit-Limit"); got != "3" {
			t.Errorf("RateLimit-Limit %q, want the request budget's 3", got)
		}
	})

	t.Run("ExecuteNeedsScopeFirst", func(t *testing.T) {
		ts, l := newLimitedServer(t, limits)
		reader := ts.createKey(t, "reader", domain.ScopeProjectsRead)
		r := ts.query(t, reader, `mutation { executeCommand(input: {projectId: "alpha", argv: ["true"]}) { command { id } } }`, nil)
		if r.code() != domain.EFORBIDDEN {
			t.Fatalf("%+v, want FORBIDDEN", r.Errors)
		}
		if n := l.asked("execute"); n != 0 {
			t.Errorf("a refused field charged %d executeCommand calls", n)
		}
	})

	// Failed authentications are counted per client address; past the
	// limit that address is refused unchecked with the key that failed, or
	// a credential naming no key; a key that has not failed is checked.
	t.Run("AuthFailures", func(t *testing.T) {
		ts, _ := newLimitedServer(t, limits)
		bad := foreignToken(t)
		from := func(token, addr string) gqlResponse {
			body, _ := json.Marshal(map[string]any{"query": `{ __typename }`})
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("X-Forwarded-For", addr)
			return ts.do(t, req)
		}
		for i := range 3 {
			if r := from(bad, "203.0.113.7"); r.status != http.StatusUnauthorized {
				t.Fatalf("bad key %d: status %d, %+v", i+1, r.status, r.Errors)
			}
		}
		for _, token := range []string{bad, "not-a-key"} {
			r := from(token, "203.0.113.7")
			if r.status != http.StatusTooManyRequests || r.code() != domain.ERATELIMITED || r.header.Get("Retry-After") == "" {
				t.Errorf("after 3 failures: status %d, %+v, Retry-After %q; want 429 RATE_LIMITED", r.status, r.Errors, r.header.Get("Retry-After"))
			}
		}
		// A key that has not failed is still checked from that address: a
		// valid one works, an unknown one is refused as such.
		if r := from(ts.admin, "203.0.113.7"); r.status != http.StatusOK {
			t.Errorf("a valid key from the address over its budget: status %d, %+v", r.status, r.Errors)
		}
		if r := from(foreignToken(t), "203.0.113.7"); r.status != http.StatusUnauthorized {
			t.Errorf("another unknown key from that address: status %d, %+v; want 401", r.status, r.Errors)
		}
		if r := from(ts.admin, "203.0.113.8"); r.status != http.StatusOK {
			t.Errorf("another address: status %d, %+v", r.status, r.Errors)
		}
	})
}

// A query over SSE is one charged request: it streams through the header
// writer, carries the headers, and the budget refuses the next one with 429.
// A subscription over SSE is not charged: it is bounded by how many run at
// once.
func TestHandler_RateLimitSSE(t *testing.T) {
	ts, l := newLimitedServer(t, domain.RateLimits{RequestsPerSecond: 1, Burst: 1})
	stream := func() (int, http.Header, string) {
		res := ts.postSSE(t, t.Context(), `{"query":"{ projects { nodes { id } } }"}`)
		defer func() { _ = res.Body.Close() }()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header, string(body)
	}
	_, header, body := stream()
	if header.Get("Content-Type") != "text/event-stream" || !strings.Contains(body, "event: complete") {
		t.Fatalf("stream: %v %s", header, body)
	}
	if header.Get("RateLimit-Limit") != "1" || header.Get("RateLimit-Remaining") != "0" {
		t.Errorf("stream headers %v, want RateLimit-Limit 1, RateLimit-Remaining 0", header)
	}
	if n := l.asked("requests"); n != 1 {
		t.Errorf("one stream charged %d requests", n)
	}
	if status, _, _ := stream(); status != http.StatusTooManyRequests {
		t.Errorf("second stream: status %d, want 429", status)
	}

	// The budget is spent, yet subscriptions open; each sends its first
	// state (the project watch starts with it).
	for _, query := range []string{
		`{"query":"subscription { projectStatus { id } }"}`,
		`{"query":"query Q { __typename } subscription S { projectStatus { id } }","operationName":"S"}`,
	} {
		ctx, cancel := context.WithCancel(t.Context())
		res := ts.postSSE(t, ctx, query)
		if res.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(res.Body)
			t.Fatalf("subscription %s with the budget spent: %d %s", query, res.StatusCode, b)
		}
		line, err := bufio.NewReader(res.Body).ReadString('\n')
		if err != nil || strings.Contains(line, "complete") {
			t.Fatalf("subscription %s: first line %q, %v", query, line, err)
		}
		cancel()
		_ = res.Body.Close()
	}
	if n := l.asked("requests"); n != 2 {
		t.Errorf("%d requests charged, want 2: subscriptions are not charged", n)
	}
}
