package main_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/infra/secretbox"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// keyIDOf returns the ID of a key written as text.
func keyIDOf(t *testing.T, key string) string {
	t.Helper()
	r, err := secretbox.ParseRing(key)
	if err != nil {
		t.Fatal(err)
	}
	return r.SealingKeyID()
}

// hashLoop runs hashScript through the CLI against its servers in turn,
// until stopped, and records every run that did not print want.
type hashLoop struct {
	t    *testing.T
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	runs int
	bad  []string
}

// startHashLoop runs commands of project demo with token against servers
// from now until the test ends or stop is called.
func startHashLoop(t *testing.T, in *instance, servers []*server, token, want string) *hashLoop {
	l := &hashLoop{t: t, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			s := servers[i%len(servers)]
			got, err := runHash(t.Context(), in, s, token)
			l.mu.Lock()
			l.runs++
			if err != nil || got != want {
				l.bad = append(l.bad, fmt.Sprintf("run %d on %s: %q, %v", l.runs, s.url, got, err))
			}
			l.mu.Unlock()
		}
	}()
	t.Cleanup(l.end)
	return l
}

// runHash runs hashScript through the CLI, as execHash does, returning
// its error instead of failing the test: it runs beside the test.
func runHash(ctx context.Context, in *instance, s *server, token string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rdevBin, "exec", "--shell", "demo", "--", hashScript)
	cmd.Env = append(slices.Clone(in.env), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(errs.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// waitRuns waits until n more commands have run, and fails the test if
// any run so far did not print the hash.
func (l *hashLoop) waitRuns(n int) {
	l.t.Helper()
	l.mu.Lock()
	target := l.runs + n
	l.mu.Unlock()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		l.mu.Lock()
		runs, bad := l.runs, slices.Clone(l.bad)
		l.mu.Unlock()
		if len(bad) > 0 {
			l.t.Fatalf("commands beside the rotation failed: %s", strings.Join(bad, "; "))
		}
		if runs >= target {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("%d commands ran, want %d", runs, target)
		}
	}
}

// end stops the loop and waits for its last command.
func (l *hashLoop) end() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
}

// keysDetail returns the detail of s's "secrets key" health component.
func keysDetail(t *testing.T, s *server, token string) string {
	t.Helper()
	r := s.query(token, `{ health { components { name status detail } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("health: %+v", r.Errors)
	}
	for _, c := range r.Data["health"].(map[string]any)["components"].([]any) {
		if c := c.(map[string]any); c["name"] == "secrets key" {
			return fmt.Sprint(c["status"], " ", c["detail"])
		}
	}
	t.Fatalf("no secrets key health component: %+v", r.Data)
	return ""
}

// serveWithSecret makes project demo in in's workspace and an admin key,
// starts a server, and sets demo's MY_TOKEN through it; it returns the
// server, the key's token and the value.
func serveWithSecret(t *testing.T, in *instance) (s *server, admin, value string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(in.workspace, "demo"), 0o750); err != nil {
		t.Fatal(err)
	}
	admin, _ = in.createKey("--name", "admin", "--admin")
	s = in.serve()
	return s, admin, setMyToken(t, s, admin)
}

// setMyToken sets demo's MY_TOKEN to a fresh value through s, and returns
// the value.
func setMyToken(t *testing.T, s *server, token string) string {
	t.Helper()
	value := secretValue()
	if r := s.query(token, setSecretM, map[string]any{"p": "demo", "n": "MY_TOKEN", "v": value}); r.code() != "" {
		t.Fatalf("setSecret: %+v", r)
	}
	return value
}

// TestE2E_SecretsRotateLive rotates the key of a running embedded server:
// commands that get their secret keep succeeding while `rdev secrets
// rotate-key --new-key-file` runs beside it; the server takes the new key
// without a restart (its health says so), so a secret it sets afterwards
// opens after a restart with the new key alone.
func TestE2E_SecretsRotateLive(t *testing.T) {
	in := newInstance(t)
	s, admin, value := serveWithSecret(t, in)
	keyFile := filepath.Join(in.data, "secrets.key")
	oldKey, err := os.ReadFile(keyFile) //nolint:gosec // the test's own key
	if err != nil {
		t.Fatal(err)
	}
	oldID := keyIDOf(t, string(oldKey))
	if got := keysDetail(t, s, admin); got != "OK keys: 1 ("+oldID+"), sealing under "+oldID {
		t.Errorf("health before: %q", got)
	}

	loop := startHashLoop(t, in, []*server{s}, admin, sha256Hex(value))
	loop.waitRuns(2)
	newKey := secretbox.NewKey()
	newID := keyIDOf(t, newKey)
	newFile := filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(newFile, []byte(newKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := in.cli("secrets", "rotate-key", "--new-key-file", newFile)
	if code != 0 || !strings.Contains(out, "1 secrets sealed again under key "+newID) || !strings.Contains(out, "key IDs in use: "+newID+";") {
		t.Fatalf("rotate-key: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	loop.waitRuns(2)
	loop.end()

	if got := keysDetail(t, s, admin); got != "OK keys: 1 ("+newID+"), sealing under "+newID || strings.Contains(got, in.data) {
		t.Errorf("health after rotation: %q, want the new key alone, no path", got)
	}
	if _, body := s.get("/metrics"); !strings.Contains(body, `rdev_secrets_keys{key_id="`+newID+`",sealing="true"} 1`) || strings.Contains(body, oldID) {
		t.Errorf("metrics after rotation lack the new key or still show the old one:\n%s", grepLines(body, "rdev_secrets"))
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the data directory's key file: %v, %v; want mode 0600", fi, err)
	}
	if b, _ := os.ReadFile(keyFile); strings.TrimSpace(string(b)) != newKey { //nolint:gosec // the test's own key
		t.Errorf("the data directory's key file does not hold the new key alone")
	}

	// Set by the server that ran through the rotation: under the new key.
	later := setMyToken(t, s, admin)
	if got := execHash(t, in, s, admin); got != sha256Hex(later) {
		t.Errorf("after rotation, before restart: hash %s, want %s", got, sha256Hex(later))
	}
	s.stop()
	old := &instance{t: t, env: append(slices.Clone(in.env), "RDEV_SECRETS_KEY="+string(oldKey))}
	if _, errs, code := old.cli("serve", "--host", "127.0.0.1", "--port", "0"); code == 0 || !strings.Contains(errs, "the secrets key is not the one the stored secrets were sealed with") {
		t.Errorf("serve with the old key after rotation: exit %d, stderr %q", code, errs)
	}
	s = in.serve()
	if got := execHash(t, in, s, admin); got != sha256Hex(later) {
		t.Errorf("after a restart with the new key alone: hash %s, want %s", got, sha256Hex(later))
	}
	s.stop()
	assertNowhere(t, in.data, later)
}

// grepLines returns text's lines that hold word.
func grepLines(text, word string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, word) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// mountedSecret lays a key file out as the kubelet mounts a Kubernetes
// Secret: key links to ..data/key, ..data to a timestamped directory, and
// an update swaps ..data by a rename.
type mountedSecret struct {
	dir string
	n   int
}

func (m *mountedSecret) path() string { return filepath.Join(m.dir, "key") }

func (m *mountedSecret) write(t *testing.T, keys ...string) {
	t.Helper()
	m.n++
	ts := fmt.Sprintf("..2026_12_07_18_00_%02d.%d", m.n, m.n)
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.dir, ts, "key"), []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(m.dir, "..data"))
	if err := os.Symlink(ts, filepath.Join(m.dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(m.dir, "..data_tmp"), filepath.Join(m.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if old == "" {
		if err := os.Symlink(filepath.Join("..data", "key"), m.path()); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.RemoveAll(filepath.Join(m.dir, old)); err != nil {
		t.Fatal(err)
	}
}

// TestE2E_SecretsRotateReplicas goes through docs/operations.md's key
// rotation with two replicas on one Postgres database, both reading the
// key from one mounted Secret updated as Kubernetes does: (1) the new key
// above the old, (2) rdev secrets rotate-key, (3) the old key removed;
// commands that get their secret succeed on both replicas at each step,
// and restarts with the new key alone work.
func TestE2E_SecretsRotateReplicas(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	oldKey, newKey := secretbox.NewKey(), secretbox.NewKey()
	oldID, newID := keyIDOf(t, oldKey), keyIDOf(t, newKey)
	secret := &mountedSecret{dir: t.TempDir()}
	secret.write(t, oldKey)
	a := newInstance(t, "DATABASE_URL="+url, "RDEV_SECRETS_KEY_FILE="+secret.path())
	// The other replica has its own data directory, as another pod would.
	b := &instance{t: t, env: append(slices.Clone(a.env), "RDEV_DATA_DIR="+filepath.Join(t.TempDir(), "data")), workspace: a.workspace}
	if out, errs, code := a.cli("migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %d %s %s", code, out, errs)
	}
	if err := os.MkdirAll(filepath.Join(a.workspace, "demo"), 0o750); err != nil {
		t.Fatal(err)
	}
	admin, _ := a.createKey("--name", "admin", "--admin")
	sa, sb := a.serve(), b.serve()
	replicas := []*server{sa, sb}
	value := setMyToken(t, sa, admin)
	loop := startHashLoop(t, a, replicas, admin, sha256Hex(value))
	loop.waitRuns(2)
	holds := func(t *testing.T, want string) {
		t.Helper()
		for i, s := range replicas {
			if got := keysDetail(t, s, admin); got != want {
				t.Errorf("replica %d's health: %q, want %q", i, got, want)
			}
		}
	}

	t.Run("1NewAboveOld", func(t *testing.T) {
		secret.write(t, "# new first, old until rotate-key is done", newKey, oldKey)
		holds(t, "OK keys: 2 ("+newID+", "+oldID+"), sealing under "+newID)
		// Set through the other replica, under the new key; both open it.
		if r := sb.query(admin, setSecretM, map[string]any{"p": "demo", "n": "OTHER", "v": "x"}); r.code() != "" {
			t.Fatalf("setSecret: %+v", r)
		}
		loop.waitRuns(4)
	})
	t.Run("BadSecretKeepsRing", func(t *testing.T) {
		secret.write(t, "not a key")
		for i, s := range replicas {
			got := keysDetail(t, s, admin)
			if !strings.HasPrefix(got, "DEGRADED keys: 2 ("+newID+", "+oldID+"), sealing under "+newID+"; the key file changed and is not taken (line 1") ||
				strings.Contains(got, secret.dir) {
				t.Errorf("replica %d's health with a bad key file: %q", i, got)
			}
		}
		loop.waitRuns(2)
		secret.write(t, newKey, oldKey)
		holds(t, "OK keys: 2 ("+newID+", "+oldID+"), sealing under "+newID)
	})
	t.Run("2RotateKey", func(t *testing.T) {
		out, errs, code := a.cli("secrets", "rotate-key")
		if code != 0 || !strings.Contains(out, "1 secrets sealed again under key "+newID) || !strings.Contains(out, "2 stored") ||
			!strings.Contains(out, "key IDs in use: "+newID+";") || !strings.Contains(out, "no value is sealed under key "+oldID) {
			t.Fatalf("rotate-key: exit %d, stdout %q, stderr %q", code, out, errs)
		}
		loop.waitRuns(4)
	})
	t.Run("3OldRemoved", func(t *testing.T) {
		secret.write(t, newKey)
		holds(t, "OK keys: 1 ("+newID+"), sealing under "+newID)
		loop.waitRuns(4)
	})
	loop.end()
	sa.stop()
	sb.stop()
	old := &instance{t: t, env: append(slices.Clone(a.env), "RDEV_SECRETS_KEY_FILE=", "RDEV_SECRETS_KEY="+oldKey)}
	if _, errs, code := old.cli("serve", "--host", "127.0.0.1", "--port", "0"); code == 0 || !strings.Contains(errs, "not the one") {
		t.Errorf("serve with the old key after rotation: exit %d, stderr %q", code, errs)
	}
	sa, sb = a.serve(), b.serve()
	for i, s := range []*server{sa, sb} {
		if got := execHash(t, a, s, admin); got != sha256Hex(value) {
			t.Errorf("replica %d after a restart with the new key alone: hash %s", i, got)
		}
	}
}

// TestE2E_SecretsLateReplica shows what happens to a server that has not
// yet seen step 1 of the rotation when the values move to the new key:
// its commands with secrets fail (never with garbage), and once its key
// file holds the new key they succeed again, without a restart.
func TestE2E_SecretsLateReplica(t *testing.T) {
	oldKey, newKey := secretbox.NewKey(), secretbox.NewKey()
	secret := &mountedSecret{dir: t.TempDir()}
	secret.write(t, oldKey)
	in := newInstance(t, "RDEV_SECRETS_KEY_FILE="+secret.path())
	s, admin, value := serveWithSecret(t, in)
	// Another replica's rotation, run with the new ring while this
	// server's mount still shows the old key alone.
	ring := filepath.Join(t.TempDir(), "ring")
	if err := os.WriteFile(ring, []byte(newKey+"\n"+oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rotator := &instance{t: t, env: append(slices.Clone(in.env), "RDEV_SECRETS_KEY_FILE="+ring)}
	if out, errs, code := rotator.cli("secrets", "rotate-key"); code != 0 || !strings.Contains(out, "key IDs in use: "+keyIDOf(t, newKey)+";") {
		t.Fatalf("rotate-key: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if got, err := runHash(t.Context(), in, s, admin); err == nil || got != "" {
		t.Errorf("a command on the server without the new key: %q, %v; want it to fail", got, err)
	} else if !strings.Contains(err.Error(), "sealed under a key not held") {
		t.Errorf("the failure does not say why: %v", err)
	}
	secret.write(t, newKey, oldKey)
	if got := execHash(t, in, s, admin); got != sha256Hex(value) {
		t.Errorf("once the mount shows the new ring: hash %s, want %s", got, sha256Hex(value))
	}
	if !strings.Contains(s.output(), "read the changed secrets key file") {
		t.Errorf("the server did not log that it read the changed file: %s", s.output())
	}
}
