package local_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/local"
)

// probeCopy copies this test binary, the network probe, to a directory
// that the user sandboxed commands run as can reach, and returns its path.
func probeCopy(tb testing.TB) string {
	tb.Helper()
	self, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil { //nolint:gosec // the probe is run by another user
			tb.Fatal(err)
		}
	}
	src, err := os.Open(self)
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, "netprobe")
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755) //nolint:gosec // an executable
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		tb.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// hostListener listens on the host's 127.0.0.1, as rdev or its database
// do, until the test ends, and returns its address.
func hostListener(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// TestExecutor_Network runs the network probe under each policy, with
// each sandbox and with none: NONE has no interface up and reaches
// nothing, LOOPBACK reaches its own 127.0.0.1 and not the host's, ANY
// reaches the host's.
func TestExecutor_Network(t *testing.T) {
	probe := probeCopy(t)
	host := hostListener(t)
	setups := map[string][]local.ExecutorOption{"unsandboxed": nil}
	if local.LandlockABI() > 0 {
		for name, sb := range sandboxes() {
			sb.ReadOnly = []string{filepath.Dir(probe)}
			setups[name] = []local.ExecutorOption{local.WithSandbox(sb)}
		}
	}
	want := map[domain.ProjectNetwork]map[string]string{
		domain.NetworkAny:      {"dial " + host: "connected", "serve": "served"},
		domain.NetworkLoopback: {"dial " + host: "refused", "serve": "served", "up": "up: lo"},
		domain.NetworkNone:     {"dial " + host: "refused", "serve": "not served", "up": "up: none"},
		"":                     {"dial " + host: "connected"},
	}
	for name, opts := range setups {
		t.Run(name, func(t *testing.T) {
			ex, proj, _ := newExecutor(t, opts...)
			for network, probes := range want {
				for mode, prefix := range probes {
					req := domain.ExecRequest{Project: proj, Argv: []string{probe}, Network: network,
						Env: map[string]string{"RDEV_TEST_NETPROBE": mode}}
					res, out, errOut, err := exec(t, context.Background(), ex, req)
					if err != nil || res.ExitCode != 0 {
						t.Fatalf("%s, %q: %+v, %v, stderr %q", network, mode, res, err, errOut)
					}
					if !strings.HasPrefix(out, prefix) {
						t.Errorf("%s, %q printed %q, want %s…", network, mode, out, prefix)
					}
				}
			}
		})
	}
}

// TestExecutor_NetworkNoPrivileges checks that a command given a network
// namespace of its own keeps no capability from making it (CAP_NET_ADMIN,
// in a user namespace when rdev is not root) and, when rdev is root, runs
// as the sandbox's user.
func TestExecutor_NetworkNoPrivileges(t *testing.T) {
	requireLandlock(t)
	for name, sb := range sandboxes() {
		if sb.UID < 0 && os.Geteuid() == 0 {
			continue // root that does not switch runs commands as root
		}
		t.Run(name, func(t *testing.T) {
			ex, proj, _ := newExecutor(t, local.WithSandbox(sb))
			req := sh(proj, "id -u; grep Cap /proc/self/status")
			req.Network = domain.NetworkLoopback
			res, out, errOut, err := exec(t, context.Background(), ex, req)
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("%+v, %v, stderr %q", res, err, errOut)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if sb.UID >= 0 && lines[0] != "65534" {
				t.Errorf("runs as uid %s, want %d", lines[0], nobody)
			}
			for _, l := range lines[1:] {
				if f := strings.Fields(l); len(f) == 2 && f[0] != "CapBnd:" && strings.Trim(f[1], "0") != "" {
					t.Errorf("the command holds capabilities: %s", l)
				}
			}
		})
	}
}

func TestExecutor_CheckNetwork(t *testing.T) {
	for name, sb := range sandboxes() {
		t.Run(name, func(t *testing.T) {
			ex, _, _ := newExecutor(t, local.WithSandbox(sb))
			for _, n := range domain.ProjectNetworks {
				if err := ex.CheckNetwork(n); err != nil {
					t.Errorf("CheckNetwork(%s): %v", n, err)
				}
			}
		})
	}
}

// refusedEnv, set, makes TestExecutor_NetworkRefusedInside run: in a user
// namespace of its own where no network namespace may be made.
const refusedEnv = "RDEV_TEST_NETNS_REFUSED"

// TestExecutor_NetworkRefused runs TestExecutor_NetworkRefusedInside in a
// user namespace of its own, whose limit of network namespaces it sets to
// 0: a kernel that refuses commands a network namespace.
func TestExecutor_NetworkRefused(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := osexec.CommandContext(t.Context(), self, "-test.run=^TestExecutor_NetworkRefusedInside$", "-test.v")
	cmd.Env = append(os.Environ(), refusedEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil && strings.Contains(string(out), "operation not permitted") {
		t.Skipf("no user namespace for this test: %v", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestExecutor_NetworkRefusedInside") {
		t.Fatalf("%v:\n%s", err, out)
	}
}

func TestExecutor_NetworkRefusedInside(t *testing.T) {
	if os.Getenv(refusedEnv) == "" {
		t.Skip("run by TestExecutor_NetworkRefused")
	}
	if err := os.WriteFile("/proc/sys/user/max_net_namespaces", []byte("0\n"), 0); err != nil {
		t.Fatal(err)
	}
	opts := map[string][]local.ExecutorOption{"unsandboxed": nil}
	if local.LandlockABI() > 0 {
		opts["landlock"] = []local.ExecutorOption{local.WithSandbox(local.Sandbox{Landlock: true, UID: -1, GID: -1})}
	}
	for name, o := range opts {
		t.Run(name, func(t *testing.T) {
			ex, proj, dir := newExecutor(t, o...)
			for _, n := range []domain.ProjectNetwork{domain.NetworkLoopback, domain.NetworkNone} {
				if err := ex.CheckNetwork(n); domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(err.Error(), "network namespace") {
					t.Errorf("CheckNetwork(%s) = %v, want EUNAVAILABLE naming the network namespace", n, err)
				}
				req := sh(proj, "echo ran > ran.txt")
				req.Network = n
				_, _, _, err := exec(t, context.Background(), ex, req)
				if domain.ErrorCode(err) != domain.EUNAVAILABLE || !strings.Contains(domain.ErrorMessage(err), "was not run") {
					t.Errorf("%s: Exec = %v, want EUNAVAILABLE saying it was not run", n, err)
				}
				if _, err := os.Stat(filepath.Join(dir, "ran.txt")); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("%s: the command ran (%v)", n, err)
				}
			}
			if res, _, _, err := exec(t, context.Background(), ex, sh(proj, "true")); err != nil || res.ExitCode != 0 {
				t.Errorf("ANY: %+v, %v; want it run", res, err)
			}
		})
	}
}

// TestExecutor_NetworkAsUser runs the network tests again as a user with
// no privileges, as an rdev not run as root runs them: the namespaces
// then come with a user namespace of their own. Only root can switch to
// that user; otherwise the tests above already ran that way.
func TestExecutor_NetworkAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: TestExecutor_Network ran without privileges already")
	}
	setpriv, err := osexec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv (util-linux) to drop privileges with")
	}
	probe := probeCopy(t)
	cmd := osexec.CommandContext(t.Context(), setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		probe, "-test.run=^(TestExecutor_Network|TestExecutor_NetworkNoPrivileges|TestExecutor_CheckNetwork)$", "-test.v", "-test.count=1")
	cmd.Dir = filepath.Dir(probe)
	cmd.Env = append(os.Environ(), "TMPDIR=/tmp", "HOME=/tmp")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
	for _, name := range []string{"TestExecutor_Network", "TestExecutor_NetworkNoPrivileges", "TestExecutor_CheckNetwork"} {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("as uid 65534, %s did not pass:\n%s", name, out)
		}
	}
	t.Logf("as uid 65534:\n%s", out)
	if strings.Contains(string(out), "--- SKIP") {
		t.Errorf("as uid 65534, a test skipped:\n%s", out)
	}
}
