package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// browserReport is what a script in testdata/browser saw a page do.
type browserReport struct {
	// Foreign lists requests and WebSockets to origins the page was not
	// given; the browser resolves no host but loopback, so any is a failure.
	Foreign []string
	Sockets []struct{ URL, Protocol string }
	// CSP lists Content-Security-Policy violations the page reported.
	CSP     []string
	Console []string
	Error   string

	// GraphiQL: the headers pane's first text, whether the explorer
	// plugin listed the schema, and every text the response pane showed
	// for each operation.
	CSPHeader                     string `json:"csp_header"`
	Hint                          string
	Explorer                      bool
	Query, Mutation, Subscription []string

	// examples/web: the page's origin and what it printed.
	Origin    string
	ErrorText string `json:"error_text"`
	Projects  []string
	Status    string
	Output    string
}

// runBrowser runs a browser script against the API at apiURL and returns its
// report. It skips (fails under RDEV_REQUIRE_SERVICES=1) without node,
// chromium or the script's npm packages.
func runBrowser(t *testing.T, script, apiURL, token string, env ...string) browserReport {
	t.Helper()
	node, dir := nodePackages(t, "testdata/browser", "puppeteer-core")
	chromium, err := findChromium()
	testenv.RequireService(t, "chromium (apt-get install chromium, or set RDEV_TEST_CHROMIUM)", err)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CHROMIUM="+chromium, "RDEV_URL="+apiURL, "RDEV_TOKEN="+token), env...)
	started := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("node %s took %s", script, time.Since(started).Round(time.Millisecond))
	var r browserReport
	found := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "REPORT "); ok {
			found = json.Unmarshal([]byte(line), &r) == nil
		}
	}
	if !found {
		t.Fatalf("node %s printed no report (%v):\n%s", script, err, out)
	}
	pretty, _ := json.MarshalIndent(r, "", "  ")
	t.Logf("node %s: %s", script, pretty)
	if err != nil || r.Error != "" {
		t.Errorf("node %s failed: %v: %s", script, err, r.Error)
	}
	if len(r.Foreign) > 0 {
		t.Errorf("the page reached for other origins: %q", r.Foreign)
	}
	if len(r.CSP) > 0 {
		t.Errorf("Content-Security-Policy violations: %q", r.CSP)
	}
	if len(r.Console) > 0 {
		t.Errorf("errors in the browser console: %q", r.Console)
	}
	return r
}

// nodePackages returns node and the absolute path of dir, whose npm
// packages (pkg among them) must be installed; it skips (fails under
// RDEV_REQUIRE_SERVICES=1) without them.
func nodePackages(t *testing.T, dir, pkg string) (node, abs string) {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	node, err = exec.LookPath("node")
	testenv.RequireService(t, "node", err)
	_, err = os.Stat(filepath.Join(abs, "node_modules", pkg))
	testenv.RequireService(t, "the npm packages of "+dir+" (run: bash scripts/npm-ci.sh)", err)
	return node, abs
}

// findChromium is RDEV_TEST_CHROMIUM, or Debian's chromium on PATH.
func findChromium() (string, error) {
	if p := os.Getenv("RDEV_TEST_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium or chromium-browser on PATH")
}

// TestE2E_GraphiQLInChromium opens the GraphiQL that rdev serves in headless
// Chromium with no network but loopback, checks the headers pane's hint and
// the explorer plugin, sets the key in the headers pane, and runs a query, a
// mutation (echo) and a subscription that shows the command's output, over
// graphql-transport-ws on the same server. Nothing may be fetched from
// elsewhere and the Content-Security-Policy must hold.
func TestE2E_GraphiQLInChromium(t *testing.T) {
	in := newInstance(t)
	s := in.serve()
	token, _ := in.createKey("--name", "browser", "--admin")
	const marker = "hello from graphiql"
	r := runBrowser(t, "graphiql.mjs", s.url, token, "RDEV_MARKER="+marker)

	if !strings.HasPrefix(r.CSPHeader, "default-src 'self';") {
		t.Errorf("Content-Security-Policy: %q", r.CSPHeader)
	}
	if !strings.Contains(r.Hint, `"Authorization": "Bearer rdev_`) {
		t.Errorf("the headers pane's hint: %q", r.Hint)
	}
	if !r.Explorer {
		t.Error("the explorer plugin did not list the schema")
	}
	if got := last(r.Query); !strings.Contains(got, `"id": "demo"`) {
		t.Errorf("the query's result: %s", got)
	}
	if got := last(r.Mutation); !strings.Contains(got, `"executeCommand"`) || strings.Contains(got, `"errors"`) {
		t.Errorf("the mutation's result: %s", got)
	}
	if got := strings.Join(r.Subscription, "\n"); !strings.Contains(got, marker+`\n"`) {
		t.Errorf("the subscription never showed the output %q: %s", marker, got)
	}
	if got := last(r.Subscription); !strings.Contains(got, `"status": "SUCCEEDED"`) {
		t.Errorf("the subscription's last result: %s", got)
	}
	wantSocket := "ws" + strings.TrimPrefix(s.url, "http") + "/graphql"
	if len(r.Sockets) != 1 || r.Sockets[0].URL != wantSocket || r.Sockets[0].Protocol != "graphql-transport-ws" {
		t.Errorf("WebSockets: %+v, want one to %s with graphql-transport-ws", r.Sockets, wantSocket)
	}
}

// TestE2E_WebExampleInChromium builds examples/web, serves it from another
// origin than the API (an allowed one), and in headless Chromium lists the
// projects (a query over HTTP, which needs CORS), runs echo (a mutation) and
// sees the page print the command's output and end (a subscription over
// graphql-ws).
func TestE2E_WebExampleInChromium(t *testing.T) {
	web := buildWebExample(t)
	page := httptest.NewServer(http.FileServer(http.Dir(web)))
	t.Cleanup(page.Close)

	in := newInstance(t, "RDEV_ALLOWED_ORIGINS="+page.URL)
	s := in.serve()
	if strings.TrimPrefix(s.url, "http://") == strings.TrimPrefix(page.URL, "http://") {
		t.Fatal("the page and the API share an origin")
	}
	token, _ := in.createKey("--name", "web", "--admin")
	const marker = "hello from the web"
	r := runBrowser(t, "web.mjs", s.url, token, "RDEV_WEB_URL="+page.URL, "RDEV_MARKER="+marker)

	if r.Origin != page.URL {
		t.Errorf("the page ran at %q, want %q", r.Origin, page.URL)
	}
	if r.ErrorText != "" {
		t.Errorf("the page shows an error: %s", r.ErrorText)
	}
	if len(r.Projects) == 0 || !strings.HasPrefix(r.Projects[0], "demo ") {
		t.Errorf("projects listed: %q", r.Projects)
	}
	if r.Output != marker+"\n" {
		t.Errorf("output printed: %q, want %q", r.Output, marker+"\n")
	}
	if !strings.HasSuffix(r.Status, ": SUCCEEDED (exit 0)") {
		t.Errorf("status: %q", r.Status)
	}
}

// buildWebExample builds examples/web with its pinned esbuild into a
// temporary directory.
func buildWebExample(t *testing.T) string {
	t.Helper()
	node, dir := nodePackages(t, "../../examples/web", "esbuild")
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "build.mjs", "--outdir", out)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building examples/web: %v\n%s", err, b)
	}
	return out
}

func last(results []string) string {
	if len(results) == 0 {
		return ""
	}
	return results[len(results)-1]
}
