package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// post sends a GraphQL request and returns the response and its headers,
// for use from any goroutine.
func (s *server) post(token, query string) (response, http.Header, error) {
	body, _ := json.Marshal(map[string]any{"query": query})
	req, err := http.NewRequestWithContext(s.t.Context(), http.MethodPost, s.url+"/graphql", bytes.NewReader(body))
	if err != nil {
		return response{}, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, nil, err
	}
	defer func() { _ = res.Body.Close() }()
	var r response
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		return response{}, nil, fmt.Errorf("response of %d is not JSON: %w", res.StatusCode, err)
	}
	r.Status = res.StatusCode
	return r, res.Header, nil
}

// TestE2E_RateLimitTwoProcesses is the acceptance test of the shared
// budget: 2×L concurrent requests on one key, half to each of two rdev
// processes on one Postgres, and exactly L succeed within the window.
func TestE2E_RateLimitTwoProcesses(t *testing.T) {
	const limit = 10
	url, _ := testenv.PostgresSchema(t)
	// A window of 10 s (a burst of 10 at 1 a second): far longer than the
	// requests take, so none of them leaves it.
	a := newInstance(t, "DATABASE_URL="+url, "RATE_LIMIT_RPS=1", fmt.Sprintf("RATE_LIMIT_BURST=%d", limit))
	token, _ := a.createKey("--name", "shared", "--admin")
	b := &instance{t: t, env: a.env, workspace: a.workspace}
	sa, sb := a.serve(), b.serve()
	for _, s := range []*server{sa, sb} {
		if !s.waitOutput("rate_limit_store=postgres") {
			t.Fatalf("the server does not keep budgets in Postgres:\n%s", s.output())
		}
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	codes := map[string]int{}
	for i := range 2 * limit {
		s := sa
		if i%2 == 1 {
			s = sb
		}
		wg.Go(func() {
			<-start
			r, h, err := s.post(token, `{ __typename }`)
			if err != nil {
				t.Error(err)
				return
			}
			if r.Status == http.StatusTooManyRequests && (h.Get("Retry-After") == "" || r.Errors[0].Extensions["retryAfterSeconds"] == nil) {
				t.Errorf("a 429 without Retry-After or retryAfterSeconds: %v %+v", h, r.Errors)
			}
			mu.Lock()
			defer mu.Unlock()
			statuses[r.Status]++
			codes[r.code()]++
		})
	}
	begun := time.Now()
	close(start)
	wg.Wait()
	if took := time.Since(begun); took > 5*time.Second {
		t.Fatalf("the requests took %s, too close to the 10 s window for the count to mean anything", took)
	}
	if statuses[http.StatusOK] != limit || statuses[http.StatusTooManyRequests] != limit || codes[""] != limit || codes["RATE_LIMITED"] != limit {
		t.Errorf("of %d concurrent requests over two processes: statuses %v, codes %v; want exactly %d accepted and %d RATE_LIMITED",
			2*limit, statuses, codes, limit, limit)
	}
}
