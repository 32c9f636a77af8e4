package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/local"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// rdevBin is the binary under test, built once by TestMain exactly as a user
// builds it.
var rdevBin string

func TestMain(m *testing.M) {
	// In-process servers (the internal tests) start sandboxed commands
	// through this test binary, as rdev's main does.
	local.ServeLauncher()
	if clientMode() {
		return
	}
	dir, err := os.MkdirTemp("", "rdev-e2e-")
	if err != nil {
		panic(err)
	}
	rdevBin = filepath.Join(dir, "rdev")
	build := exec.Command("go", "build", "-o", rdevBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building rdev:", err)
		os.Exit(1)
	}
	code := m.Run()
	testenv.StopKubeCluster()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// instance is one rdev configuration: its environment and directories.
type instance struct {
	t   testing.TB
	env []string
	// workspace is the root of the instance's local projects.
	workspace string
	// data is its data directory (RDEV_DATA_DIR).
	data string
}

func newInstance(t testing.TB, extra ...string) *instance {
	dir := t.TempDir()
	env := append(os.Environ(),
		"RDEV_DATA_DIR="+filepath.Join(dir, "data"),
		"RDEV_WORKSPACE="+filepath.Join(dir, "workspace"),
		"RDEV_LOG_FORMAT=text",
		"DATABASE_URL=",
		"RDEV_EXECUTOR=local", // whatever kubeconfig the machine has
		// Tests send requests faster than people do; the rate-limit tests
		// set their own limits (a later entry wins).
		"RATE_LIMIT_RPS=100000", "RATE_LIMIT_BURST=100000", "RATE_LIMIT_EXECUTE_PER_MINUTE=100000",
		"RATE_LIMIT_AUTH_FAILURES_PER_MINUTE=100000",
	)
	return &instance{t: t, env: append(env, extra...), workspace: filepath.Join(dir, "workspace"), data: filepath.Join(dir, "data")}
}

// cli runs `rdev args…` to completion and returns its stdout, stderr and
// exit code.
func (in *instance) cli(args ...string) (stdout, stderr string, code int) {
	in.t.Helper()
	ctx, cancel := context.WithTimeout(in.t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rdevBin, args...)
	cmd.Env = in.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), errb.String(), ee.ExitCode()
	} else if err != nil {
		in.t.Fatalf("rdev %v: %v", args, err)
	}
	return out.String(), errb.String(), 0
}

// createKey runs `rdev keys create --init` (it may come before the first
// serve) and returns the token and key ID.
func (in *instance) createKey(args ...string) (token, id string) {
	in.t.Helper()
	out, errs, code := in.cli(append([]string{"keys", "create", "--json", "--init"}, args...)...)
	if code != 0 {
		in.t.Fatalf("keys create: exit %d: %s", code, errs)
	}
	var k struct{ ID, Token string }
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		in.t.Fatalf("keys create output %q: %v", out, err)
	}
	return k.Token, k.ID
}

// server is a running `rdev serve`.
type server struct {
	t      testing.TB
	cmd    *exec.Cmd
	url    string
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	exited chan struct{}
}

var listening = regexp.MustCompile(`listening on (\S+)`)

// serve starts `rdev serve` on a free loopback port and waits until it
// says where it listens. The server gets SIGTERM at cleanup and must exit 0.
func (in *instance) serve() *server {
	in.t.Helper()
	return in.serveWith(nil, "--host", "127.0.0.1", "--port", "0")
}

// serveWith starts `rdev serve args…` as serve does, its stderr going to
// stderr if that is not nil.
func (in *instance) serveWith(stderr io.Writer, args ...string) *server {
	in.t.Helper()
	s := &server{t: in.t, exited: make(chan struct{})}
	s.cmd = exec.Command(rdevBin, append([]string{"serve"}, args...)...)
	s.cmd.Env = in.env
	s.cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.stderr}
	if stderr != nil {
		s.cmd.Stderr = stderr
	}
	pipe, err := s.cmd.StdoutPipe()
	if err != nil {
		in.t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			s.mu.Lock()
			s.stdout.WriteString(sc.Text() + "\n")
			s.mu.Unlock()
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case <-s.exited:
		in.t.Fatalf("rdev serve exited early: %s", s.output())
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		in.t.Fatalf("rdev serve did not start: %s", s.output())
	}
	in.t.Cleanup(func() { s.stop() })
	return s
}

// stop sends SIGTERM and requires a clean exit.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if code := s.cmd.ProcessState.ExitCode(); code != 0 {
			s.t.Errorf("rdev serve exited %d after SIGTERM: %s", code, s.output())
		}
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		s.t.Errorf("rdev serve ignored SIGTERM: %s", s.output())
	}
}

// waitOutput reports whether the server prints want within a few seconds.
func (s *server) waitOutput(want string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(s.output(), want) {
			return true
		}
	}
	return false
}

func (s *server) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stdout.String() + s.stderr.String()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

type response struct {
	Status int
	Header http.Header `json:"-"`
	Data   map[string]any
	Errors []struct {
		Message    string
		Extensions map[string]any
	}
}

func (r response) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// query POSTs a GraphQL request as curl would.
func (s *server) query(token, query string, vars map[string]any) response {
	s.t.Helper()
	return s.queryWith(token, query, vars, nil)
}

// queryWith is query with header's fields added to the request.
func (s *server) queryWith(token, query string, vars map[string]any, header http.Header) response {
	s.t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(s.t.Context(), http.MethodPost, s.url+"/graphql", bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	var r response
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		s.t.Fatalf("response of %d is not JSON: %v", res.StatusCode, err)
	}
	r.Status, r.Header = res.StatusCode, res.Header
	return r
}

func (s *server) get(path string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequestWithContext(s.t.Context(), http.MethodGet, s.url+path, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestE2E_FirstRun walks the README: start with embedded defaults, create a
// key with the CLI, list projects, see GraphiQL, revoke the key, stop.
func TestE2E_FirstRun(t *testing.T) {
	in := newInstance(t)
	s := in.serve()
	if !s.waitOutput("rdev keys create --name admin --admin") {
		t.Errorf("the banner does not say how to make the first key: %s", s.output())
	}
	if r := s.query("", `{ projects { nodes { id } } }`, nil); r.code() != "UNAUTHENTICATED" {
		t.Fatalf("without a key: %+v", r)
	}

	token, id := in.createKey("--name", "admin", "--admin")
	r := s.query(token, `{ projects { nodes { id status } } viewer { id name scopes } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %+v", r.Errors)
	}
	if got := fmt.Sprint(r.Data["projects"]); !strings.Contains(got, "demo") || !strings.Contains(got, "RUNNING") {
		t.Errorf("the example project is missing: %s", got)
	}
	if got := fmt.Sprint(r.Data["viewer"]); !strings.Contains(got, id) || !strings.Contains(got, "ADMIN") {
		t.Errorf("viewer: %s", got)
	}

	if code, body := s.get("/"); code != 200 || !strings.Contains(body, "graphiql") {
		t.Errorf("GraphiQL: %d %.200s", code, body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := s.get(p); code != 200 {
			t.Errorf("%s: %d %s", p, code, body)
		}
	}
	r = s.query(token, `{ health { ready components { name status detail } } }`, nil)
	if got := fmt.Sprint(r.Data["health"]); len(r.Errors) > 0 || !strings.Contains(got, "ready:true") || !strings.Contains(got, "name:database status:OK") {
		t.Errorf("health: %s %+v", got, r.Errors)
	}

	out, _, _ := in.cli("keys", "list")
	if !strings.Contains(out, id) || !strings.Contains(out, "ACTIVE") {
		t.Errorf("keys list: %s", out)
	}
	if _, errs, code := in.cli("keys", "revoke", id); code != 0 {
		t.Fatalf("keys revoke: %d %s", code, errs)
	}
	// The server learns of the CLI's change by reading key versions:
	// within domain.AuthStaleness.
	for deadline := time.Now().Add(domain.AuthStaleness); ; time.Sleep(50 * time.Millisecond) {
		if r = s.query(token, `{ viewer { id } }`, nil); r.Status == 401 && r.code() == "UNAUTHENTICATED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a revoked key still works %s later: %+v", domain.AuthStaleness, r)
		}
	}
}

// TestE2E_NodeClients drives the server with graphql-ws, graphql-sse and
// fetch from npm.
func TestE2E_NodeClients(t *testing.T) {
	dir, err := filepath.Abs("testdata/clients")
	if err != nil {
		t.Fatal(err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		testenv.RequireService(t, "node", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "graphql-ws")); err != nil {
		testenv.RequireService(t, "npm clients (run: npm ci --prefix cmd/rdev/testdata/clients)", err)
	}
	in := newInstance(t)
	s := in.serve()
	token, _ := in.createKey("--name", "node", "--admin")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "clients.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "RDEV_URL="+s.url, "RDEV_TOKEN="+token)
	out, err := cmd.CombinedOutput()
	t.Logf("node clients:\n%s", out)
	if err != nil {
		t.Fatalf("node clients failed: %v\nserver: %s", err, s.output())
	}
	if n := strings.Count(string(out), "\nok ") + 1; !strings.HasPrefix(string(out), "ok ") || n < 7 {
		t.Fatalf("expected 7 passed checks, got %d", n)
	}
}

// TestE2E_Postgres runs the same first steps against a fresh PostgreSQL
// database.
func TestE2E_Postgres(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	in := newInstance(t, "DATABASE_URL="+url)
	// An empty database is not rdev's: keys refuses it unless --init.
	if _, errs, code := in.cli("keys", "create", "--name", "x", "--admin"); code != 1 || !strings.Contains(errs, "no rdev schema yet") {
		t.Errorf("keys create on an empty database: exit %d, stderr %q", code, errs)
	}
	if out, errs, code := in.cli("migrate", "up"); code != 0 || !strings.Contains(out, "current") {
		t.Fatalf("migrate up: %d %s %s", code, out, errs)
	}
	s := in.serve()
	token, _ := in.createKey("--name", "pg", "--scopes", "projects:read,keys:read")
	if r := s.query(token, `{ projects { nodes { id } } apiKeys { nodes { name } } }`, nil); len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
	if r := s.query(token, `mutation { createAPIKey(input: {name: "x", scopes: [ADMIN]}) { token } }`, nil); r.code() != "FORBIDDEN" {
		t.Fatalf("a key without keys:write created a key: %+v", r)
	}
	if code, _ := s.get("/"); code != 404 {
		t.Errorf("GraphiQL must be off by default outside embedded mode, got %d", code)
	}
}

// TestE2E_Migrate runs the migrate subcommands on the embedded database.
func TestE2E_Migrate(t *testing.T) {
	in := newInstance(t)
	out, _, code := in.cli("migrate", "status")
	if code != 0 || !strings.Contains(out, "pending") || strings.Contains(out, "applied") {
		t.Fatalf("status before: %d %s", code, out)
	}
	if _, errs, code := in.cli("migrate", "up"); code != 0 {
		t.Fatalf("up: %s", errs)
	}
	if out, _, _ := in.cli("migrate", "status"); strings.Contains(out, "pending") {
		t.Fatalf("status after up: %s", out)
	}
	if _, errs, code := in.cli("migrate", "down"); code != 0 {
		t.Fatalf("down: %s", errs)
	}
	if out, _, _ := in.cli("migrate", "status"); !strings.Contains(out, "pending") {
		t.Fatalf("status after down: %s", out)
	}
}

// TestE2E_BadUsage checks that mistakes get a clear message and status.
func TestE2E_BadUsage(t *testing.T) {
	in := newInstance(t)
	tests := []struct {
		args []string
		env  string
		code int
		want string
	}{
		{[]string{"bogus"}, "", 2, "unknown command"},
		{[]string{"serve", "--port", "eighty"}, "", 2, "invalid value"},
		{[]string{"serve"}, "LOG_LEVEL=loud", 1, "LOG_LEVEL"},
		{[]string{"serve"}, "PORT=x", 1, "PORT"},
		{[]string{"serve"}, "RDEV_TRUSTED_PROXIES=10.0.0.0/99", 1, "RDEV_TRUSTED_PROXIES"},
		{[]string{"serve"}, "RATE_LIMIT_STORE=disk", 1, "RATE_LIMIT_STORE"},
		{[]string{"serve"}, "RATE_LIMIT_STORE=postgres", 1, "needs DATABASE_URL"},
		{[]string{"serve"}, "RATE_LIMIT_STORE=redis", 1, "needs REDIS_URL"},
		{[]string{"serve", "--rate-limit-burst", "0"}, "", 1, "burst"},
		{[]string{"serve"}, "RATE_LIMIT_RPS=-1", 1, "must not be negative"},
		{[]string{"keys", "create", "--name", "x", "--scopes", "root"}, "", 1, "unknown scope"},
		{[]string{"keys", "create", "--scopes", "admin"}, "", 1, "name"},
		{[]string{"keys", "revoke", "nope"}, "", 1, "not found"},
		{[]string{"migrate", "sideways"}, "", 2, "unknown action"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " ")+" "+tt.env, func(t *testing.T) {
			run := &instance{t: t, env: append(append([]string{}, in.env...), tt.env)}
			out, errs, code := run.cli(tt.args...)
			if code != tt.code || !strings.Contains(out+errs, tt.want) {
				t.Errorf("exit %d (want %d), output %q (want %q)", code, tt.code, out+errs, tt.want)
			}
		})
	}
	_, errs, code := in.cli("serve", "--help")
	if code != 0 {
		t.Errorf("serve --help: exit %d", code)
	}
	for _, env := range []string{"PORT", "DATABASE_URL", "RDEV_DATA_DIR", "RDEV_WORKSPACE", "RDEV_GRAPHIQL", "LOG_LEVEL",
		"RATE_LIMIT_RPS", "RATE_LIMIT_BURST", "RATE_LIMIT_EXECUTE_PER_MINUTE", "RATE_LIMIT_AUTH_FAILURES_PER_MINUTE", "RATE_LIMIT_STORE", "REDIS_URL"} {
		if !strings.Contains(errs, "env "+env+")") {
			t.Errorf("serve --help does not list %s", env)
		}
	}
}
