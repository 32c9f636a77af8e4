package kube

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/rdev-hq/rdev/domain"
)

// viaProxy returns c's client configuration with its address replaced by a
// proxy to the API server.
func viaProxy(t *testing.T, c *testCluster) (*rest.Config, *tcpProxy) {
	t.Helper()
	u, err := url.Parse(c.rest.Host)
	if err != nil {
		t.Fatal(err)
	}
	p := newTCPProxy(t, u.Host)
	rc := rest.CopyConfig(c.rest)
	rc.Host = "https://" + p.addr
	return rc, p
}

// TestBreaker_Cluster: the breaker opens when the API server cannot be
// reached, fails calls at once while open, and closes again once a probe
// gets through; the pod cache reports not ready until it has synced.
func TestBreaker_Cluster(t *testing.T) {
	t.Parallel()
	c := mustCluster(t)
	k := newKwokProject(t, c, Config{})
	rc, proxy := viaProxy(t, c)
	proxy.stop()

	cl, err := NewClusterForConfig(rc, Config{Namespaces: []string{k.ns}, Breaker: BreakerSettings{Failures: 2, OpenFor: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	// rdev starts while the API server is unreachable: not ready.
	projects, err := cl.NewProjects(ProjectsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	projects.Start(ctx)
	time.Sleep(500 * time.Millisecond)
	if err := projects.Ready(ctx); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("cache over an unreachable API server: Ready = %v, want EUNAVAILABLE", err)
	}

	// The executor resolves pods through the direct cache, and execs
	// through the proxy.
	ex := NewExecutor(cl, k.projects, WithKillGrace(time.Second), WithStateDir(k.state))
	t.Cleanup(ex.Close)
	eventually(t, 10*time.Second, func() string {
		_, err := ex.Exec(ctx, shReq(k.proj, "true"), nil, nil)
		if cl.Breaker().State() != "open" {
			return "breaker " + cl.Breaker().State() + " after " + domain.ErrorMessage(err)
		}
		return ""
	})
	start := time.Now()
	_, err = ex.Exec(ctx, shReq(k.proj, "true"), nil, nil)
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(domain.ErrorMessage(err), "retry in 1 s") {
		t.Errorf("while open: %v, want EUNAVAILABLE with a retry hint", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("an open breaker took %v to refuse", d)
	}

	proxy.start(t)
	eventually(t, 20*time.Second, func() string {
		res, err := ex.Exec(ctx, shReq(k.proj, "echo back"), nil, nil)
		if err != nil || res.ExitCode != 0 {
			return "exec after the API server came back: " + domain.ErrorMessage(err)
		}
		return ""
	})
	if s := cl.Breaker().State(); s != "closed" {
		t.Errorf("breaker %s after a good probe, want closed", s)
	}
	eventually(t, 40*time.Second, func() string {
		if err := projects.Ready(ctx); err != nil {
			return "the cache did not recover: " + domain.ErrorMessage(err)
		}
		return ""
	})
}

// TestExecutor_KwokStreamBroken: a stream cut mid-command ends Exec with an
// error that says so, keeps the output so far, and the process is killed.
func TestExecutor_KwokStreamBroken(t *testing.T) {
	t.Parallel()
	c := mustCluster(t)
	k := newKwokProject(t, c, Config{})
	rc, proxy := viaProxy(t, c)
	cl, err := NewClusterForConfig(rc, Config{Namespaces: []string{k.ns}})
	if err != nil {
		t.Fatal(err)
	}
	ex := NewExecutor(cl, k.projects, WithKillGrace(time.Second), WithStateDir(k.state))
	t.Cleanup(ex.Close)
	out := &lineWriter{}
	done := make(chan error, 1)
	go func() {
		_, err := ex.Exec(t.Context(), shReq(k.proj, `echo $$; sleep 300`), out, nil)
		done <- err
	}()
	pid := out.pids(t, 1)[0]
	proxy.drop()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Exec did not return after its stream broke")
	}
	if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(domain.ErrorMessage(err), "broke mid-command") {
		t.Errorf("err = %v, want EUNAVAILABLE 'broke mid-command'", err)
	}
	if got := out.String(); got != strconvItoa(pid)+"\n" {
		t.Errorf("output so far = %q", got)
	}
	if localAlive(pid) {
		t.Errorf("process %d still runs after its stream broke", pid)
	}
}

// TestExecutor_WebSocketFirst: exec goes over WebSocket against the real
// API server, and falls back to SPDY against the kubelet's own server
// (which speaks WebSocket v4 only).
func TestExecutor_WebSocketFirst(t *testing.T) {
	t.Parallel()
	record := func(rc *rest.Config) (*rest.Config, func() []string) {
		var mu sync.Mutex
		var seen []string
		rc = rest.CopyConfig(rc)
		rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				mu.Lock()
				switch {
				case r.Header.Get("Sec-Websocket-Protocol") != "":
					seen = append(seen, "websocket")
				case r.Header.Get("X-Stream-Protocol-Version") != "":
					seen = append(seen, "spdy")
				}
				mu.Unlock()
				return rt.RoundTrip(r)
			})
		}
		return rc, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
	}

	t.Run("APIServer", func(t *testing.T) {
		c := mustCluster(t)
		k := newKwokProject(t, c, Config{})
		rc, seen := record(c.rest)
		cl, err := NewClusterForConfig(rc, Config{Namespaces: []string{k.ns}})
		if err != nil {
			t.Fatal(err)
		}
		res, err := NewExecutor(cl, k.projects, WithWarmIdle(0)).Exec(t.Context(), shReq(k.proj, "true"), nil, nil)
		if err != nil || res.ExitCode != 0 {
			t.Fatal(res, err)
		}
		if got := strings.Join(seen(), ","); got != "websocket" {
			t.Errorf("upgrades = %s, want websocket only", got)
		}
	})
	t.Run("KubeletFallback", func(t *testing.T) {
		ep := newExecEndpoint(t, time.Hour)
		projects, _ := mustFakeProjects(t, ProjectsOptions{}, testPod("default", "p-0", "p"))
		rc, seen := record(&rest.Config{Host: ep.srv.URL})
		cl, err := NewClusterForConfig(rc, Config{})
		if err != nil {
			t.Fatal(err)
		}
		proj, _ := projects.FindProjectByID(t.Context(), "p")
		res, err := NewExecutor(cl, projects, WithWarmIdle(0)).Exec(t.Context(), shReq(proj, "true"), nil, nil)
		if err != nil || res.ExitCode != 0 {
			t.Fatal(res, err)
		}
		if got := strings.Join(seen(), ","); got != "websocket,spdy" {
			t.Errorf("upgrades = %s, want websocket,spdy", got)
		}
	})
}
