package main_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// holder is a running revoked.mjs: connections held open with one key,
// reporting what happens to them.
type holder struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
	seen  map[string]time.Time // line → when it arrived
	cmd   *exec.Cmd
}

// holdConnections starts revoked.mjs with token against servers.
func holdConnections(t *testing.T, token string, servers ...*server) *holder {
	t.Helper()
	node, dir := nodeClients(t)
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.url
	}
	h := &holder{t: t, seen: map[string]time.Time{}}
	h.cmd = exec.Command(node, "revoked.mjs")
	h.cmd.Dir = dir
	h.cmd.Env = append(os.Environ(), "RDEV_URLS="+strings.Join(urls, ","), "RDEV_TOKEN="+token)
	h.cmd.Stderr = os.Stderr
	out, err := h.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.mu.Lock()
			h.lines = append(h.lines, sc.Text())
			h.seen[sc.Text()] = time.Now()
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = h.cmd.Process.Kill()
		<-done
		_ = h.cmd.Wait()
		t.Logf("revoked.mjs said:\n%s", strings.Join(h.output(), "\n"))
	})
	return h
}

func (h *holder) output() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.lines)
}

// waitLines waits until every line in want has arrived and returns the
// latest time one arrived. It fails the test after within.
func (h *holder) waitLines(within time.Duration, want ...string) time.Time {
	h.t.Helper()
	deadline := time.Now().Add(within)
	for {
		h.mu.Lock()
		var missing []string
		var last time.Time
		for _, w := range want {
			at, ok := h.seen[w]
			if !ok {
				missing = append(missing, w)
			} else if at.After(last) {
				last = at
			}
		}
		h.mu.Unlock()
		if len(missing) == 0 {
			return last
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("after %s still waiting for %q; the clients said:\n%s", within, missing, strings.Join(h.output(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openAfterRename waits until every server in servers answers viewer with
// token by the name want, so that it has applied the rename to the key it
// caches and to the connections it guards (the cache is cleared just
// before they are judged), and then fails the test if any connection of h
// has ended.
func (h *holder) openAfterRename(token, want string, servers ...*server) {
	h.t.Helper()
	for _, s := range servers {
		deadline := time.Now().Add(time.Minute)
		for {
			r := s.query(token, `{ viewer { name } }`, nil)
			if v, _ := r.Data["viewer"].(map[string]any); v != nil && v["name"] == want {
				break
			}
			if time.Now().After(deadline) {
				h.t.Fatalf("%s still answers viewer with %+v; want the name %q", s.url, r, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, l := range h.output() {
		if !strings.HasPrefix(l, "ready ") {
			h.t.Fatalf("after a rename the clients said %q; want every connection still open", l)
		}
	}
}

// noneCompleted fails the test if a subscription completed without an
// error first, as one that is over would: a client would take it for the
// end of the stream. (graphql-sse completes after the error event that
// ends it.)
func (h *holder) noneCompleted() {
	h.t.Helper()
	lines := h.output()
	for i, l := range lines {
		label, ok := strings.CutPrefix(l, "complete ")
		if ok && !slices.ContainsFunc(lines[:i], func(e string) bool { return strings.HasPrefix(e, "ended "+label+" ") }) {
			h.t.Errorf("subscription %s completed as if it were over, instead of failing", label)
		}
	}
}

// readyLines and endLines are what revoked.mjs prints for each of n
// servers when its connections are up, and when its key stopped
// authorizing them with code (the WebSocket ones closed with 4403).
func readyLines(n int) []string {
	var out []string
	for i := range n {
		for _, p := range []string{"graphql-ws", "legacy", "sse", "idle"} {
			out = append(out, "ready "+p+"@"+strconv.Itoa(i))
		}
	}
	return out
}

func endLines(n int, code string) []string {
	var out []string
	for i := range n {
		at := "@" + strconv.Itoa(i)
		for _, p := range []string{"graphql-ws", "legacy", "sse"} {
			out = append(out, "ended "+p+at+" "+code)
		}
		for _, p := range []string{"graphql-ws", "legacy", "idle"} {
			out = append(out, "closed "+p+at+" 4403")
		}
	}
	return out
}

// TestE2E_KeyEndsOpenConnections: revoking or rotating a key, or its
// expiry, ends every subscription made with it (graphql-ws,
// subscriptions-transport-ws, graphql-sse) with UNAUTHENTICATED, and
// updateAPIKey (or `rdev keys update`) taking away a scope it holds ends
// them with FORBIDDEN, while a rename leaves them open; either way its
// WebSockets close with 4403, idle ones included, within 5 s
// (domain.AuthStaleness), on the replica that made the change and on
// another one sharing its database.
func TestE2E_KeyEndsOpenConnections(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	a := newInstance(t, "DATABASE_URL="+url)
	// The other replica has its own data directory, as another pod would.
	b := &instance{t: t, env: append(slices.Clone(a.env), "RDEV_DATA_DIR="+filepath.Join(t.TempDir(), "data")), workspace: a.workspace}
	if out, errs, code := a.cli("migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %d %s %s", code, out, errs)
	}
	if err := os.MkdirAll(filepath.Join(a.workspace, "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	sa, sb := a.serve(), b.serve()
	admin, _ := a.createKey("--name", "admin", "--admin")
	const within = domain.AuthStaleness

	update := func(t *testing.T, in map[string]any) {
		t.Helper()
		if r := sa.query(admin, `mutation($in: UpdateAPIKeyInput!) { updateAPIKey(input: $in) { apiKey { id } } }`, map[string]any{"in": in}); len(r.Errors) > 0 {
			t.Fatalf("updateAPIKey: %+v", r.Errors)
		}
	}
	keysUpdate := func(t *testing.T, args ...string) {
		t.Helper()
		if _, errs, code := a.cli(append([]string{"keys", "update"}, args...)...); code != 0 {
			t.Fatalf("keys update: exit %d: %s", code, errs)
		}
	}
	for _, tt := range []struct {
		name string
		code string // of the error that ends each subscription
		// end ends the key id, held by h with token; it returns when the
		// key stopped authorizing the connections.
		end func(t *testing.T, h *holder, token, id string) time.Time
	}{
		{"Revoke", "UNAUTHENTICATED", func(t *testing.T, _ *holder, _, id string) time.Time {
			if r := sa.query(admin, `mutation($id: ID!) { revokeAPIKey(input: {id: $id}) { apiKey { status } } }`, map[string]any{"id": id}); len(r.Errors) > 0 {
				t.Fatalf("revokeAPIKey: %+v", r.Errors)
			}
			return time.Now()
		}},
		{"RotateWithoutGrace", "UNAUTHENTICATED", func(t *testing.T, _ *holder, _, id string) time.Time {
			if r := sa.query(admin, `mutation($id: ID!) { rotateAPIKey(input: {id: $id, gracePeriodSeconds: 0}) { token } }`, map[string]any{"id": id}); len(r.Errors) > 0 {
				t.Fatalf("rotateAPIKey: %+v", r.Errors)
			}
			return time.Now()
		}},
		{"RevokeFromCLI", "UNAUTHENTICATED", func(t *testing.T, _ *holder, _, id string) time.Time {
			if _, errs, code := a.cli("keys", "revoke", id); code != 0 {
				t.Fatalf("keys revoke: exit %d: %s", code, errs)
			}
			return time.Now()
		}},
		// projectStatus needs projects:read: renaming the key leaves its
		// connections open, taking projects:read away ends them.
		{"UpdateNarrowsScopes", "FORBIDDEN", func(t *testing.T, h *holder, token, id string) time.Time {
			update(t, map[string]any{"id": id, "name": "renamed"})
			h.openAfterRename(token, "renamed", sa, sb)
			update(t, map[string]any{"id": id, "scopes": []string{"COMMANDS_READ"}})
			return time.Now()
		}},
		{"UpdateFromCLI", "FORBIDDEN", func(t *testing.T, h *holder, token, id string) time.Time {
			keysUpdate(t, id, "--name", "renamed")
			h.openAfterRename(token, "renamed", sa, sb)
			keysUpdate(t, id, "--scopes", "commands:read")
			return time.Now()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			token, id := a.createKey("--name", "held", "--scopes", "projects:read,commands:read")
			h := holdConnections(t, token, sa, sb)
			h.waitLines(time.Minute, readyLines(2)...)
			ended := tt.end(t, h, token, id)
			last := h.waitLines(time.Minute, endLines(2, tt.code)...)
			t.Logf("every connection ended %s after the change", last.Sub(ended).Round(time.Millisecond))
			if took := last.Sub(ended); took > within {
				t.Errorf("the last connection ended %s after the change; want within %s", took, within)
			}
			h.noneCompleted()
		})
	}

	t.Run("Expiry", func(t *testing.T) {
		expires := 6 * time.Second
		expiresAt := time.Now().Add(expires) // no later than the key's own
		token, _ := a.createKey("--name", "short", "--scopes", "projects:read", "--expires", expires.String())
		h := holdConnections(t, token, sa, sb)
		h.waitLines(time.Minute, readyLines(2)...)
		last := h.waitLines(time.Minute, endLines(2, "UNAUTHENTICATED")...)
		h.noneCompleted()
		t.Logf("every connection ended %s after the key expired", last.Sub(expiresAt).Round(time.Millisecond))
		if took := last.Sub(expiresAt); took > within {
			t.Errorf("the last connection ended %s after the key expired; want within %s", took, within)
		}
	})
}

// TestE2E_KeyEndsOpenConnections_Embedded: on the embedded database, a key
// revoked by the CLI (another process, which cannot tell the server) ends
// the server's connections within 5 s: the server finds the change by
// reading key versions.
func TestE2E_KeyEndsOpenConnections_Embedded(t *testing.T) {
	in := newInstance(t)
	s := in.serve()
	if err := os.MkdirAll(filepath.Join(in.workspace, "demo"), 0o755); err != nil {
		t.Fatal(err)
	}
	token, id := in.createKey("--name", "held", "--scopes", "projects:read")
	h := holdConnections(t, token, s)
	h.waitLines(time.Minute, readyLines(1)...)
	if _, errs, code := in.cli("keys", "revoke", id); code != 0 {
		t.Fatalf("keys revoke: exit %d: %s", code, errs)
	}
	ended := time.Now()
	last := h.waitLines(time.Minute, endLines(1, "UNAUTHENTICATED")...)
	h.noneCompleted()
	t.Logf("every connection ended %s after the CLI revoked the key", last.Sub(ended).Round(time.Millisecond))
	if took := last.Sub(ended); took > domain.AuthStaleness {
		t.Errorf("the last connection ended %s after the CLI revoked the key; want within %s", took, domain.AuthStaleness)
	}
	// And requests with it fail at once.
	if r := s.query(token, `{ projects { nodes { id } } }`, nil); r.code() != "UNAUTHENTICATED" {
		t.Errorf("a query with the revoked key: %+v", r)
	}
}
