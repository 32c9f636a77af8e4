package main_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// auditLine is one line of audit.mjs's report: "ok ID name" for a passed
// audit, "warn|notice|error ID name: reason [response]" for another.
var auditLine = regexp.MustCompile(`^(ok|warn|notice|error) (\S+) `)

// TestE2E_GraphQLOverHTTPAudit runs graphql-http's audit of the GraphQL over
// HTTP specification (serverAudits, the npm package pinned in
// testdata/audit) against the binary, with a key, and requires every audit
// to pass: each one that does not is printed with its reason.
func TestE2E_GraphQLOverHTTPAudit(t *testing.T) {
	dir, err := filepath.Abs("testdata/audit")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	testenv.RequireService(t, "node", err)
	_, err = os.Stat(filepath.Join(dir, "node_modules", "graphql-http"))
	testenv.RequireService(t, "graphql-http (run: npm ci --prefix cmd/rdev/testdata/audit)", err)

	in := newInstance(t)
	s := in.serve()
	token, _ := in.createKey("--name", "audit", "--scopes", "projects:read")
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "audit.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RDEV_URL="+s.url, "RDEV_TOKEN="+token)
	out, runErr := cmd.CombinedOutput()
	total, passed := 0, 0
	for line := range strings.Lines(string(out)) {
		m := auditLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		total++
		if m[1] == "ok" {
			passed++
		} else {
			t.Errorf("audit %s", strings.TrimSpace(line))
		}
	}
	t.Logf("graphql-http audit: %d of %d ok", passed, total)
	if runErr != nil || total == 0 {
		t.Fatalf("audit.mjs: %v (%d audits read)\n%s\nserver: %s", runErr, total, out, s.output())
	}
	// graphql-http 1.23.1 has 61 audits: fewer means some did not run.
	if total < 61 {
		t.Errorf("only %d audits ran, want 61\n%s", total, out)
	}
}

// TestE2E_CORS checks the binary's wiring of RDEV_ALLOWED_ORIGINS: a page on
// an allowed origin gets its preflight answered and may open a WebSocket; a
// foreign page gets neither (one notion of an allowed Origin), and "*"
// allows every page.
func TestE2E_CORS(t *testing.T) {
	const page, foreign = "http://localhost:5173", "https://evil.example"
	type answer struct {
		StatusCode int
		Header     http.Header
	}
	preflight := func(t *testing.T, s *server, origin string) answer {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, s.url+"/graphql", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization, content-type")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		return answer{res.StatusCode, res.Header}
	}
	socket := func(t *testing.T, s *server, origin string) int {
		t.Helper()
		d := gorilla.Dialer{Subprotocols: []string{"graphql-transport-ws"}, HandshakeTimeout: 10 * time.Second}
		c, res, err := d.DialContext(t.Context(), "ws"+strings.TrimPrefix(s.url, "http")+"/graphql", http.Header{"Origin": {origin}})
		if err == nil {
			_ = c.Close()
		}
		if res == nil {
			t.Fatalf("WebSocket from %s: %v", origin, err)
		}
		_ = res.Body.Close()
		return res.StatusCode
	}

	t.Run("Listed", func(t *testing.T) {
		in := newInstance(t, "RDEV_ALLOWED_ORIGINS="+page+",http://other.example:8000")
		s := in.serve()
		if res := preflight(t, s, page); res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != page {
			t.Errorf("allowed page's preflight: %d %v", res.StatusCode, res.Header)
		}
		if res := preflight(t, s, foreign); res.StatusCode != http.StatusForbidden || res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("foreign page's preflight: %d %v", res.StatusCode, res.Header)
		}
		if code := socket(t, s, page); code != http.StatusSwitchingProtocols {
			t.Errorf("allowed page's WebSocket: %d", code)
		}
		if code := socket(t, s, foreign); code != http.StatusForbidden {
			t.Errorf("foreign page's WebSocket: %d", code)
		}
		token, _ := in.createKey("--name", "web", "--scopes", "projects:read")
		r := s.queryWith(token, `{ projects { nodes { id } } }`, nil, http.Header{"Origin": {page}})
		if len(r.Errors) > 0 || r.Header.Get("Access-Control-Allow-Origin") != page || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
			t.Errorf("a page's query: %+v %v", r.Errors, r.Header)
		}
		if r := s.queryWith(token, `{ projects { nodes { id } } }`, nil, nil); len(r.Errors) > 0 || r.Header.Get("Access-Control-Allow-Origin") != "" || r.Header.Get("Vary") != "" {
			t.Errorf("a query without Origin got CORS headers: %v", r.Header)
		}
	})

	t.Run("Any", func(t *testing.T) {
		s := newInstance(t, "RDEV_ALLOWED_ORIGINS=*").serve()
		if res := preflight(t, s, foreign); res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != foreign {
			t.Errorf("with *, a preflight: %d %v", res.StatusCode, res.Header)
		}
	})

	t.Run("Unset", func(t *testing.T) {
		s := newInstance(t).serve()
		if res := preflight(t, s, page); res.StatusCode != http.StatusForbidden || res.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("without RDEV_ALLOWED_ORIGINS, a preflight: %d %v", res.StatusCode, res.Header)
		}
	})
}

// TestE2E_ApolloRetriesRefusals runs Apollo Client with the retry set-up
// docs/api.md gives, against a key allowed one request a second: the
// queries it refuses (429, in application/graphql-response+json) must be
// retried until they succeed.
func TestE2E_ApolloRetriesRefusals(t *testing.T) {
	in := newInstance(t, "RATE_LIMIT_RPS=1", "RATE_LIMIT_BURST=1")
	s := in.serve()
	token, _ := in.createKey("--name", "apollo", "--scopes", "projects:read")
	out := runNode(t, s, token, "retry.mjs")
	if !strings.Contains(out, "ok refused queries were retried") {
		t.Fatalf("retry.mjs did not finish its checks:\n%s", out)
	}
}
