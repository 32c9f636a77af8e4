package main_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/infra/local"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// TestE2E_LocalSandbox drives the real binary as a key that may only run
// commands would: from inside a command, rdev's database, its data
// directory and another project's files are out of reach, while the
// command's own project, /usr and the usual tools work; and no client
// learns where the database lies.
func TestE2E_LocalSandbox(t *testing.T) {
	if local.LandlockABI() == 0 {
		testenv.RequireService(t, "Landlock", errors.New("the kernel offers no Landlock"))
	}
	in := newInstance(t)
	mustWriteFile(t, filepath.Join(in.workspace, "demo", "README.txt"), "demo\n")
	mustWriteFile(t, filepath.Join(in.workspace, "other", "secret.txt"), "project B's secret\n")
	admin, _ := in.createKey("--name", "admin", "--admin")
	runner, _ := in.createKey("--name", "runner", "--scopes", "commands:read,commands:write,projects:read")
	s := in.serve()
	if !s.waitOutput("sandboxed with Landlock") {
		t.Errorf("banner does not say commands are sandboxed: %s", s.output())
	}
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+runner)}
	db := filepath.Join(in.data, "rdev.db")
	// Open to everyone, as a careless install leaves them: only the
	// sandbox, not file permissions or the command's user, keeps the
	// command out.
	root := filepath.Dir(in.data)
	for _, p := range []string{filepath.Dir(root), root, in.data, in.workspace, filepath.Join(in.workspace, "other")} {
		mustChmod(t, p, 0o777)
	}
	for _, p := range []string{db, filepath.Join(in.workspace, "other", "secret.txt")} {
		mustChmod(t, p, 0o666)
	}
	before, err := os.ReadFile(filepath.Join(in.workspace, "other", "secret.txt"))
	if err != nil {
		t.Fatal(err)
	}

	refused := [][]string{
		{"sh", "-c", "echo x >> " + db},
		{"cat", db},
		{"cat", "../other/secret.txt"},
		{"cat", filepath.Join(in.workspace, "other", "secret.txt")},
		{"sh", "-c", "echo x > " + filepath.Join(in.data, "planted")},
		{"ls", in.data},
	}
	for _, argv := range refused {
		out, errs, code := cli.cli(append([]string{"exec", "demo", "--"}, argv...)...)
		if code == 0 || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want it refused", argv, code, out, errs)
		}
	}
	// The escalation as it was seen: sqlite3 run from a command to make a
	// key of its own an admin.
	t.Run("Sqlite3", func(t *testing.T) {
		_, err := exec.LookPath("sqlite3")
		testenv.RequireService(t, "sqlite3 (Debian's sqlite3)", err)
		insert := `INSERT INTO api_keys (id, name, scopes) VALUES ('planted', 'planted', '["admin"]')`
		out, errs, code := cli.cli("exec", "demo", "--", "sqlite3", db, insert)
		if code == 0 || out != "" {
			t.Errorf("sqlite3 from a command: exit %d, stdout %q, stderr %q; want it refused", code, out, errs)
		}
		if !strings.Contains(errs, "unable to open database") {
			t.Errorf("sqlite3 from a command: stderr %q, want sqlite3's own refusal (the test would prove less)", errs)
		}
		keys, errs, code := in.cli("keys", "list")
		if code != 0 || strings.Contains(keys, "planted") {
			t.Errorf("rdev keys list: exit %d, %q %q; want no planted key", code, keys, errs)
		}
	})
	if _, err := os.Stat(filepath.Join(in.data, "planted")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a command wrote into the data directory (%v)", err)
	}
	if after, _ := os.ReadFile(filepath.Join(in.workspace, "other", "secret.txt")); string(after) != string(before) {
		t.Errorf("another project's file changed: %q", after)
	}
	if out, errs, code := in.cli("audit", "verify"); code != 0 {
		t.Errorf("audit verify after the attempts: exit %d: %s%s", code, out, errs)
	}

	out, errs, code := cli.cli("exec", "demo", "--", "sh", "-c", `set -e; echo mine > mine.txt; cat mine.txt; ls /usr >/dev/null; echo t > "$TMPDIR/t"; cat "$TMPDIR/t"; id -u`)
	if code != 0 {
		t.Fatalf("work in the own project: exit %d, stderr %q", code, errs)
	}
	if f := strings.Fields(out); len(f) != 3 || f[0] != "mine" || f[1] != "t" || (os.Geteuid() == 0 && f[2] == "0") {
		t.Errorf("work in the own project printed %q (as root rdev, the command must not be root)", out)
	}

	for _, token := range []string{runner, admin} {
		r := s.query(token, `{ health { components { name detail } } }`, nil)
		if len(r.Errors) > 0 {
			t.Fatalf("health: %+v", r.Errors)
		}
		if b, _ := json.Marshal(r.Data); strings.Contains(string(b), in.data) || strings.Contains(string(b), "rdev.db") {
			t.Errorf("health tells where the database lies: %s", b)
		}
	}
}

// TestE2E_LocalSandboxOff runs commands unconfined when told so, and says
// loudly what that means.
func TestE2E_LocalSandboxOff(t *testing.T) {
	in := newInstance(t, "RDEV_LOCAL_SANDBOX=off")
	token, _ := in.createKey("--name", "admin", "--admin")
	s := in.serve()
	if !s.waitOutput("WARNING:  the local sandbox is off") || !strings.Contains(s.output(), "commands can read and change rdev's data") {
		t.Errorf("no loud warning with the sandbox off: %s", s.output())
	}
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)}
	if out, errs, code := cli.cli("exec", "demo", "--", "sh", "-c", "echo ran"); code != 0 || out != "ran\n" {
		t.Errorf("command with the sandbox off: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if _, errs, code := newInstance(t, "RDEV_LOCAL_SANDBOX=maybe").cli("serve", "--port", "0"); code == 0 || !strings.Contains(errs, "RDEV_LOCAL_SANDBOX") {
		t.Errorf("a bad RDEV_LOCAL_SANDBOX: exit %d, stderr %q", code, errs)
	}
}

func mustWriteFile(tb testing.TB, name, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func mustChmod(tb testing.TB, name string, mode os.FileMode) {
	tb.Helper()
	if err := os.Chmod(name, mode); err != nil {
		tb.Fatal(err)
	}
}
