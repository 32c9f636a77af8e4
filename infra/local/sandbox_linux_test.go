package local_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/exectest"
	"github.com/rdev-hq/rdev/infra/local"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// nobody is the user sandboxed commands run as when the tests run as root.
const nobody = 65534

// requireLandlock skips the test (fails it under RDEV_REQUIRE_SERVICES=1)
// when the kernel offers no Landlock.
func requireLandlock(tb testing.TB) {
	tb.Helper()
	var err error
	if local.LandlockABI() == 0 {
		err = errors.New("the kernel offers no Landlock (CONFIG_SECURITY_LANDLOCK, lsm=landlock)")
	}
	testenv.RequireService(tb, "Landlock", err)
}

// sandboxes are the confinements under test: Landlock alone (what stops a
// command when rdev does not run as root), and, as root, Landlock with
// another user.
func sandboxes() map[string]local.Sandbox {
	s := map[string]local.Sandbox{"landlock": {Landlock: true, UID: -1, GID: -1}}
	if os.Geteuid() == 0 {
		s["landlock+nobody"] = local.Sandbox{Landlock: true, UID: nobody, GID: nobody}
	}
	return s
}

func TestExecutor_ContractSandboxed(t *testing.T) {
	requireLandlock(t)
	for name, sb := range sandboxes() {
		t.Run(name, func(t *testing.T) {
			exectest.TestExecutor(t, func(t *testing.T) (domain.Executor, *domain.Project) {
				ex, proj, _ := newExecutor(t, local.WithSandbox(sb))
				return ex, proj
			})
		})
	}
}

func TestExecutor_Sandbox(t *testing.T) {
	requireLandlock(t)
	for name, sb := range sandboxes() {
		t.Run(name, func(t *testing.T) {
			ex, proj, dir := newExecutor(t, local.WithSandbox(sb))
			other := filepath.Join(filepath.Dir(dir), "other")
			mustWrite(t, filepath.Join(other, "secret.txt"), "project B's secret\n")
			data := t.TempDir()
			db := filepath.Join(data, "rdev.db")
			mustWrite(t, db, "SQLite format 3\n")
			ctx := context.Background()
			run := func(script string) (domain.ExecResult, string, string) {
				t.Helper()
				res, out, errOut, err := exec(t, ctx, ex, sh(proj, script))
				if err != nil {
					t.Fatalf("%s: %v", script, err)
				}
				return res, out, errOut
			}
			refused := []string{
				"cat ../other/secret.txt",
				"cat " + filepath.Join(other, "secret.txt"),
				"ls " + filepath.Dir(dir),
				"cat " + db,
				"echo x >> " + db,
				"echo x > " + filepath.Join(data, "new"),
				"ls " + data,
				// A signal to a process outside the sandbox (this one).
				"kill -0 " + strconv.Itoa(os.Getpid()) + " && echo alive",
			}
			// Its environment, unless the command keeps root's
			// CAP_SYS_PTRACE, which Landlock lets pass (rdev never runs
			// commands as root).
			if sb.UID >= 0 || os.Geteuid() != 0 {
				refused = append(refused, "cat /proc/"+strconv.Itoa(os.Getpid())+"/environ")
			}
			for _, script := range refused {
				if res, out, _ := run(script); res.ExitCode == 0 || out != "" {
					t.Errorf("%q: exit %d, output %q; want it refused", script, res.ExitCode, out)
				}
			}
			if b, err := os.ReadFile(db); err != nil || string(b) != "SQLite format 3\n" {
				t.Errorf("rdev.db now holds %q (%v)", b, err)
			}
			res, out, errOut := run(`set -e; echo made > mine.txt; mkdir sub; cat mine.txt; ls /usr >/dev/null; echo t > "$TMPDIR/t"; cat "$TMPDIR/t"; id -u`)
			if res.ExitCode != 0 {
				t.Fatalf("work in the project: exit %d, stderr %q", res.ExitCode, errOut)
			}
			lines := strings.Fields(out)
			if len(lines) != 3 || lines[0] != "made" || lines[1] != "t" {
				t.Fatalf("work in the project printed %q", out)
			}
			if sb.UID >= 0 && lines[2] != "65534" {
				t.Errorf("runs as uid %s, want %d", lines[2], nobody)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "mine.txt")); err != nil || string(b) != "made\n" {
				t.Errorf("mine.txt holds %q (%v)", b, err)
			}
		})
	}
}

// TestExecutor_SandboxSecretFiles checks that a command's file secrets are
// out of reach of every other command, even one of the same project
// running as the same user at the same time.
func TestExecutor_SandboxSecretFiles(t *testing.T) {
	requireLandlock(t)
	for name, sb := range sandboxes() {
		t.Run(name, func(t *testing.T) {
			ex, proj, dir := newExecutor(t, local.WithSandbox(sb))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			holder := sh(proj, `echo "$RDEV_SECRETS_DIR" > held; while :; do sleep 0.05; done`)
			holder.SecretFiles = map[string]string{"TOKEN": "held-value"}
			done := make(chan error, 1)
			go func() { _, _, _, err := exec(t, ctx, ex, holder); done <- err }()
			var held string
			for deadline := time.Now().Add(30 * time.Second); held == ""; time.Sleep(20 * time.Millisecond) {
				if b, err := os.ReadFile(filepath.Join(dir, "held")); err == nil && strings.HasSuffix(string(b), "\n") {
					held = strings.TrimSpace(string(b))
				} else if time.Now().After(deadline) {
					t.Fatal("the holding command never wrote its secrets directory")
				}
			}
			b, err := os.ReadFile(filepath.Join(held, "TOKEN")) //nolint:gosec // the command's own secrets directory.
			if err != nil || string(b) != "held-value" {
				t.Fatalf("the secret file holds %q (%v)", b, err)
			}
			for _, script := range []string{"cat " + filepath.Join(held, "TOKEN"), "ls " + held, "ls " + filepath.Dir(held)} {
				res, out, _, err := exec(t, ctx, ex, sh(proj, script))
				if err != nil || res.ExitCode == 0 || out != "" {
					t.Errorf("%q from another command: exit %d, output %q, %v; want it refused", script, res.ExitCode, out, err)
				}
			}
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(held); !errors.Is(err, os.ErrNotExist) { //nolint:gosec // the command's own secrets directory.
				t.Errorf("%s is still there after the command (%v)", held, err)
			}
		})
	}
}

// TestExecutor_SandboxTempRemoved checks that a command's private temporary
// directory does not outlive it.
func TestExecutor_SandboxTempRemoved(t *testing.T) {
	requireLandlock(t)
	ex, proj, _ := newExecutor(t, local.WithSandbox(local.Sandbox{Landlock: true, UID: -1, GID: -1}))
	_, out, _, err := exec(t, context.Background(), ex, sh(proj, `echo "$TMPDIR"`))
	if err != nil {
		t.Fatal(err)
	}
	tmp := strings.TrimSpace(out)
	if !strings.Contains(tmp, "rdev-cmd-") {
		t.Fatalf("TMPDIR is %q", tmp)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after the command (%v)", tmp, err)
	}
}

// BenchmarkExecutor_Exec measures what the launcher adds to a command's
// start: `true`, run plain and sandboxed.
func BenchmarkExecutor_Exec(b *testing.B) {
	for name, opts := range map[string][]local.ExecutorOption{
		"plain":     nil,
		"sandboxed": {local.WithSandbox(local.Sandbox{Landlock: local.LandlockABI() > 0, UID: -1, GID: -1})},
	} {
		b.Run(name, func(b *testing.B) {
			ex, proj, _ := newExecutor(b, opts...)
			req := domain.ExecRequest{Project: proj, Argv: []string{"true"}}
			for b.Loop() {
				if res, err := ex.Exec(context.Background(), req, nil, nil); err != nil || res.ExitCode != 0 {
					b.Fatalf("%+v, %v", res, err)
				}
			}
		})
	}
}
