package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/barebench"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// edgeClients is how many keep-alive clients send requests at once.
const edgeClients = 50

// edgeRounds is how many rounds make one op, and edgeRoundRequests how many
// requests each side answers in a round: 4,000 a side per op, a second or
// two on a quiet machine.
const (
	edgeRounds        = 8
	edgeRoundRequests = 500
)

// BenchmarkEdge compares the requests per second rdev answers over
// loopback HTTP with those of a bare gqlgen server (internal/barebench,
// gqlgen's own handler and settings) under the same load: 50 keep-alive
// clients, each side with its own client of the same settings, both warmed
// up first. An op is edgeRounds rounds; in each, both sides answer
// edgeRoundRequests, one right after the other, the side going first
// alternating from round to round. "x-bare" is the median over the rounds
// of rdev's rate over the bare server's in the same round: the two rates of
// a round see the machine in nearly the same state, and the median ignores
// the rounds another process disturbed. "bare-req/s" and "rdev-req/s" are
// the rates over all rounds; "bare-allocs/req" and "rdev-allocs/req" the
// allocations of the whole process (client included, the same for both) per
// request.
//
//   - projects: `{ projects { nodes { id status } } }` with an API key
//     (SQLite, local projects), rate limiting off, against `{ todos { id
//     text } }`.
//   - projects,ratelimit: the same with rate limiting on (the memory store,
//     a limit no client reaches).
//   - typename: `{ __typename }` without a key, against the same on the
//     bare server.
func BenchmarkEdge(b *testing.B) {
	bare := httptest.NewServer(barebench.NewHandler())
	b.Cleanup(bare.Close)
	const todos = `{"query":"{ todos { id text } }"}`
	const typename = `{"query":"{ __typename }"}`
	const projects = `{"query":"{ projects { nodes { id status } } }"}`
	noLimits := map[string]string{"RATE_LIMIT_RPS": "0", "RATE_LIMIT_EXECUTE_PER_MINUTE": "0", "RATE_LIMIT_AUTH_FAILURES_PER_MINUTE": "0"}
	memoryLimits := map[string]string{"RATE_LIMIT_STORE": "memory", "RATE_LIMIT_RPS": "1000000", "RATE_LIMIT_BURST": "1000000"}
	for _, bm := range []struct {
		name       string
		env        map[string]string
		bare, rdev string
		key        bool
		want       string // in rdev's answer
	}{
		{"projects", noLimits, todos, projects, true, `"nodes":[{"id":"demo"`},
		{"projects,ratelimit", memoryLimits, todos, projects, true, `"nodes":[{"id":"demo"`},
		{"typename", noLimits, typename, typename, false, `"__typename":"Query"`},
		// Projects from the Kubernetes backend's informer cache, as in
		// production, instead of the embedded default's directory listing.
		{"projects,kube", noLimits, todos, projects, true, `"nodes":[{"id":"kedge"`},
	} {
		b.Run(bm.name, func(b *testing.B) {
			if strings.HasSuffix(bm.name, ",kube") {
				kc, _ := testenv.KubeCluster(b)
				ns := testenv.KubeProject(b, kc, "kedge", b.TempDir())
				bm.env = maps.Clone(bm.env)
				bm.env["RDEV_EXECUTOR"], bm.env["KUBECONFIG"], bm.env["RDEV_NAMESPACE"] = "kube", kc, ns
			}
			ts := startTestServer(b, bm.env)
			bareLoad := newEdgeLoad(bare.URL+"/query", bm.bare, "")
			token := ""
			if bm.key {
				token = ts.token
			}
			rdevLoad := newEdgeLoad(ts.url+"/graphql", bm.rdev, token)
			bareLoad.check(b, `"data":{`)
			rdevLoad.check(b, bm.want)
			loads := [2]*edgeLoad{bareLoad, rdevLoad}
			for _, l := range loads {
				l.run(b, edgeRoundRequests) // warm up: connections, caches
			}
			var ratios []float64
			for b.Loop() {
				for round := range edgeRounds {
					var rates [2]float64
					for i := range loads {
						j := (round + i) % len(loads)
						rates[j] = loads[j].measure(b, edgeRoundRequests)
					}
					ratios = append(ratios, rates[1]/rates[0])
				}
			}
			slices.Sort(ratios)
			b.ReportMetric(bareLoad.rate(), "bare-req/s")
			b.ReportMetric(rdevLoad.rate(), "rdev-req/s")
			b.ReportMetric(ratios[len(ratios)/2], "x-bare")
			b.ReportMetric(bareLoad.allocsPerRequest(), "bare-allocs/req")
			b.ReportMetric(rdevLoad.allocsPerRequest(), "rdev-allocs/req")
		})
	}
}

// edgeLoad sends one request body over and over from edgeClients
// keep-alive connections, and tallies the rounds it measured.
type edgeLoad struct {
	url, body, token string
	client           *http.Client
	took             time.Duration
	requests         int
	allocs           uint64
}

func newEdgeLoad(url, body, token string) *edgeLoad {
	t := &http.Transport{MaxIdleConnsPerHost: edgeClients, MaxConnsPerHost: edgeClients}
	return &edgeLoad{url: url, body: body, token: token, client: &http.Client{Transport: t}}
}

// do sends the request once and returns the answer's body.
func (l *edgeLoad) do() ([]byte, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, l.url, strings.NewReader(l.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if l.token != "" {
		req.Header.Set("Authorization", "Bearer "+l.token)
	}
	res, err := l.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d: %s", res.StatusCode, b)
	}
	return b, err
}

// check fails the benchmark unless the answer holds want and no error.
func (l *edgeLoad) check(tb testing.TB, want string) {
	tb.Helper()
	// A project on Kubernetes is known once the informer has seen its pod
	// Ready: wait for it.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		b, err := l.do()
		if err != nil {
			tb.Fatal(err)
		}
		if bytes.Contains(b, []byte(want)) && !bytes.Contains(b, []byte(`"errors"`)) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s answered %s, want %s", l.url, b, want)
		}
	}
}

// measure runs n requests as run does, tallies how long they took and what
// the process allocated meanwhile, and returns their rate.
func (l *edgeLoad) measure(tb testing.TB, n int) float64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	took := l.run(tb, n)
	runtime.ReadMemStats(&after)
	sent := n / edgeClients * edgeClients
	l.took += took
	l.requests += sent
	l.allocs += after.Mallocs - before.Mallocs
	return float64(sent) / took.Seconds()
}

// rate is the measured requests per second.
func (l *edgeLoad) rate() float64 { return float64(l.requests) / l.took.Seconds() }

// allocsPerRequest is the measured allocations per request.
func (l *edgeLoad) allocsPerRequest() float64 { return float64(l.allocs) / float64(l.requests) }

// run sends n requests from edgeClients clients at once and returns how
// long they took.
func (l *edgeLoad) run(tb testing.TB, n int) time.Duration {
	var wg sync.WaitGroup
	errs := make(chan error, edgeClients)
	start := time.Now()
	for range edgeClients {
		wg.Go(func() {
			for range n / edgeClients {
				if _, err := l.do(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	return took
}
