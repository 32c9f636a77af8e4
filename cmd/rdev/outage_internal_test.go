package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// countingProxy stands between a CLI and the server and counts what it
// saw: WebSocket connections and 503 answers.
type countingProxy struct {
	url          string
	conns, tries atomic.Int64
}

func newCountingProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(r *http.Response) error {
		if r.StatusCode == http.StatusServiceUnavailable {
			p.tries.Add(1)
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			p.conns.Add(1)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

// syncBuffer is a bytes.Buffer that one goroutine writes while another
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// cliRun is one run of the CLI in this process.
type cliRun struct {
	stdout, stderr syncBuffer
	code           chan int
}

// startCLI runs the CLI with args against server, as a key's holder would.
func startCLI(ctx context.Context, server, key string, args ...string) *cliRun {
	r := &cliRun{code: make(chan int, 1)}
	env := map[string]string{"RDEV_SERVER": server, "RDEV_KEY": key}
	go func() {
		r.code <- run(ctx, args, cli{getenv: func(k string) string { return env[k] }, stdout: &r.stdout, stderr: &r.stderr})
	}()
	return r
}

// wait returns the exit code, failing t if the run takes longer than d.
func (r *cliRun) wait(t *testing.T, name string, d time.Duration) int {
	t.Helper()
	select {
	case code := <-r.code:
		return code
	case <-time.After(d):
		t.Fatalf("%s still running after %s; stdout %q, stderr %q", name, d, r.stdout.String(), r.stderr.String())
		return 0
	}
}

// lines returns "line 1\n" … "line n\n".
func lines(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// TestCLI_SurvivesDatabaseOutage runs rdev on a PostgreSQL cluster of its
// own, stops the cluster under `rdev exec` and `rdev logs --follow`, and
// starts it again: both go on where they were, print every line once, and
// exit with the command's status. An exec submitted while the database is
// down is answered 503 until it is back, and then runs.
func TestCLI_SurvivesDatabaseOutage(t *testing.T) {
	pg := testenv.StartPGCluster(t)
	// Two commands run at once in the example project.
	ts := startTestServer(t, map[string]string{"DATABASE_URL": pg.URL(), "RDEV_PER_PROJECT_COMMANDS": "2"})
	down := false
	t.Cleanup(func() {
		// The server shuts down before the cluster goes, and it can finish
		// what it was doing only with its database.
		if down {
			_ = pg.Start()
		}
	})
	ctx := t.Context()
	const n = 30
	script := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do i=$((i+1)); echo "line $i"; sleep 0.2; done`, n)

	execProxy, logsProxy := newCountingProxy(t, ts.url), newCountingProxy(t, ts.url)
	exec := startCLI(ctx, execProxy.url, ts.token, "exec", "--shell", "demo", "--", script)
	id := ts.execute(t, map[string]any{"projectId": "demo", "shell": script})
	logs := startCLI(ctx, logsProxy.url, ts.token, "logs", "--follow", id)
	started := func() bool {
		return strings.Contains(exec.stdout.String(), "line 3\n") && strings.Contains(logs.stdout.String(), "line 3\n")
	}
	if !waitFor(30*time.Second, started) {
		t.Fatalf("no output: exec %q %q, logs %q %q", exec.stdout.String(), exec.stderr.String(), logs.stdout.String(), logs.stderr.String())
	}

	if err := pg.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	down = true
	// Both lose their subscription and come back at least twice while the
	// database is down (one connection each before).
	reconnected := func() bool { return execProxy.conns.Load() >= 3 && logsProxy.conns.Load() >= 3 }
	if !waitFor(30*time.Second, reconnected) {
		t.Fatalf("connections: exec %d, logs %d; want both to reconnect during the outage; exec: %q %q; logs: %q %q",
			execProxy.conns.Load(), logsProxy.conns.Load(), exec.stdout.String(), exec.stderr.String(), logs.stdout.String(), logs.stderr.String())
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	down = false
	for _, r := range []struct {
		name string
		run  *cliRun
	}{{"exec", exec}, {"logs --follow", logs}} {
		code := r.run.wait(t, r.name, time.Minute)
		if code != 0 || r.run.stdout.String() != lines(n) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0 and lines 1 to %d once each",
				r.name, code, r.run.stdout.String(), r.run.stderr.String(), n)
		}
	}

	// Submitted while the database is down: more 503s than a fixed number
	// of attempts would take, then it runs.
	if err := pg.Stop("fast"); err != nil {
		t.Fatal(err)
	}
	down = true
	lateProxy := newCountingProxy(t, ts.url)
	late := startCLI(ctx, lateProxy.url, ts.token, "exec", "demo", "--", "echo", "late")
	if !waitFor(30*time.Second, func() bool { return lateProxy.tries.Load() >= 6 }) {
		t.Fatalf("%d answers of 503 to a submit during the outage, want 6", lateProxy.tries.Load())
	}
	if err := pg.Start(); err != nil {
		t.Fatal(err)
	}
	down = false
	if code := late.wait(t, "exec during the outage", time.Minute); code != 0 || late.stdout.String() != "late\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 0 and late", code, late.stdout.String(), late.stderr.String())
	}
}
