package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// nodeClients returns the node binary and the clients' directory, or skips
// (fails under RDEV_REQUIRE_SERVICES=1) when they are not installed.
func nodeClients(t *testing.T) (node, dir string) {
	t.Helper()
	dir, err := filepath.Abs("testdata/clients")
	if err != nil {
		t.Fatal(err)
	}
	node, err = exec.LookPath("node")
	testenv.RequireService(t, "node", err)
	_, err = os.Stat(filepath.Join(dir, "node_modules", "@apollo", "client"))
	testenv.RequireService(t, "npm clients (run: npm ci --prefix cmd/rdev/testdata/clients)", err)
	return node, dir
}

// runNode runs one of the client scripts against s and returns its output.
func runNode(t *testing.T, s *server, token, script string, env ...string) string {
	t.Helper()
	node, dir := nodeClients(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "RDEV_URL="+s.url, "RDEV_TOKEN="+token), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("node %s:\n%s", script, out)
	if err != nil {
		t.Fatalf("node %s failed: %v\nserver: %s", script, err, s.output())
	}
	return string(out)
}

// TestE2E_CommandOutputClients runs commands printing 10,000 lines and
// follows them with graphql-ws, subscriptions-transport-ws, graphql-sse and
// Apollo Client, then disconnects at line 5,000 and resumes with afterSeq.
func TestE2E_CommandOutputClients(t *testing.T) {
	in := newInstance(t, "RDEV_PER_PROJECT_COMMANDS=4")
	s := in.serve()
	token, _ := in.createKey("--name", "node", "--admin")
	out := runNode(t, s, token, "commands.mjs", "RDEV_PROJECT=demo")
	if n := strings.Count(out, "ok "); n < 12 {
		t.Fatalf("expected at least 12 passed checks, got %d", n)
	}
}

// waitGone polls until pid no longer exists.
func waitGone(pid int, within time.Duration) bool {
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			return true
		}
	}
	return false
}

// readPIDs waits for a file of PIDs, one per line, with at least n lines.
func readPIDs(t *testing.T, path string, n int) []int {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		b, _ := os.ReadFile(path)
		lines := strings.Fields(string(b))
		if len(lines) >= n {
			pids := make([]int, 0, n)
			for _, l := range lines[:n] {
				pid, err := strconv.Atoi(l)
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				pids = append(pids, pid)
			}
			return pids
		}
	}
	t.Fatalf("no %d PIDs in %s", n, path)
	return nil
}

// TestE2E_CancelAndTimeoutKillProcesses checks with the process table that
// cancel and timeout stop the command and every process it started.
func TestE2E_CancelAndTimeoutKillProcesses(t *testing.T) {
	in := newInstance(t, "RDEV_KILL_GRACE=1s", "RDEV_PER_PROJECT_COMMANDS=2")
	s := in.serve()
	token, _ := in.createKey("--name", "t", "--admin")
	ws := in.workspace
	// The script records its own PID and a child's, then waits; the child
	// ignores SIGTERM, so only SIGKILL after the grace period ends it.
	script := func(file string) string {
		return fmt.Sprintf(`echo $$ > %[1]s.tmp; (trap "" TERM; sleep 300) & echo $! >> %[1]s.tmp; mv %[1]s.tmp %[1]s; wait`, file)
	}
	execute := func(shell string, timeout int) string {
		in := map[string]any{"projectId": "demo", "shell": shell}
		if timeout > 0 {
			in["timeoutSeconds"] = timeout
		}
		r := s.query(token, `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`, map[string]any{"in": in})
		if len(r.Errors) > 0 {
			t.Fatalf("execute: %+v", r.Errors)
		}
		return r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	}
	status := func(id string) map[string]any {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			r := s.query(token, `query($id: ID!) { command(id: $id) { status reason signal exitCode } }`, map[string]any{"id": id})
			c, _ := r.Data["command"].(map[string]any)
			if c != nil && c["status"] != "RUNNING" && c["status"] != "QUEUED" {
				return c
			}
		}
		t.Fatalf("command %s did not end", id)
		return nil
	}

	cancelled := execute(script("cancel.pids"), 0)
	timedOut := execute(script("timeout.pids"), 2)
	pids := readPIDs(t, filepath.Join(ws, "demo", "cancel.pids"), 2)
	if r := s.query(token, `mutation($id: ID!) { cancelCommand(input: {id: $id}) { command { status cancelRequested } } }`, map[string]any{"id": cancelled}); len(r.Errors) > 0 {
		t.Fatalf("cancel: %+v", r.Errors)
	}
	if c := status(cancelled); c["status"] != "CANCELLED" || !strings.Contains(fmt.Sprint(c["reason"]), "cancelled by API key") {
		t.Errorf("cancelled command ended %v, want CANCELLED saying which key cancelled it", c)
	}
	tpids := readPIDs(t, filepath.Join(ws, "demo", "timeout.pids"), 2)
	if c := status(timedOut); c["status"] != "TIMED_OUT" {
		t.Errorf("timed-out command ended %v", c)
	}
	for _, pid := range append(pids, tpids...) {
		if !waitGone(pid, 5*time.Second) {
			t.Errorf("process %d is still running after its command ended", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if r := s.query(token, `mutation($id: ID!) { cancelCommand(input: {id: $id}) { command { id } } }`, map[string]any{"id": cancelled}); r.code() != "CONFLICT" {
		t.Errorf("cancelling a finished command: %+v", r)
	}
}

// TestE2E_TwoProcessesOnePostgres runs two rdev processes on one database:
// a command submitted to one is followed, complete, through the other, and
// every command runs exactly once.
func TestE2E_TwoProcessesOnePostgres(t *testing.T) {
	url, _ := testenv.PostgresSchema(t)
	a := newInstance(t, "DATABASE_URL="+url, "RDEV_PER_PROJECT_COMMANDS=8")
	b := &instance{t: t, env: a.env, workspace: a.workspace}
	sa, sb := a.serve(), b.serve()
	token, _ := a.createKey("--name", "two", "--admin")

	// Follow through B a command queued through A (either may run it).
	r := sa.query(token, `mutation { executeCommand(input: {projectId: "demo", shell: "for i in $(seq 1 2000); do echo line $i; done"}) { command { id } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
	id := r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	out := runNode(t, sb, token, "follow.mjs", "RDEV_COMMAND="+id)
	var want strings.Builder
	for i := 1; i <= 2000; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	if !strings.Contains(out, "ok follow") || !strings.Contains(out, fmt.Sprintf("bytes=%d", want.Len())) {
		t.Fatalf("following through the other process: %s", out)
	}

	// Many commands through both: each runs exactly once.
	const n = 40
	ids := map[string]bool{}
	for i := range n {
		s := sa
		if i%2 == 1 {
			s = sb
		}
		r := s.query(token, fmt.Sprintf(`mutation { executeCommand(input: {projectId: "demo", shell: "echo run %d >> runs.log"}) { command { id } } }`, i), nil)
		if len(r.Errors) > 0 {
			t.Fatalf("%+v", r.Errors)
		}
		ids[r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)] = true
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		r := sa.query(token, `{ queue { queuedTotal running } }`, nil)
		q, _ := r.Data["queue"].(map[string]any)
		if q != nil && q["queuedTotal"] == float64(0) && q["running"] == float64(0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not drain: %+v", r)
		}
	}
	log, _ := os.ReadFile(filepath.Join(a.workspace, "demo", "runs.log"))
	for i := range n {
		if c := strings.Count(string(log), fmt.Sprintf("run %d\n", i)); c != 1 {
			t.Errorf("command %d ran %d times", i, c)
		}
	}
}

// TestE2E_ExecCLI runs `rdev exec` as a user would: output arrives on the
// right streams and the exit code is the command's.
func TestE2E_ExecCLI(t *testing.T) {
	in := newInstance(t)
	s := in.serve()
	token, _ := in.createKey("--name", "cli", "--admin")
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)}

	out, errs, code := cli.cli("exec", "demo", "--", "sh", "-c", "seq 1 3000; echo oops >&2; exit 3")
	if code != 3 {
		t.Errorf("exit code %d, want 3 (stderr %q)", code, errs)
	}
	var want strings.Builder
	for i := 1; i <= 3000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if out != want.String() {
		t.Errorf("stdout: %d bytes, want %d", len(out), want.Len())
	}
	if !strings.Contains(errs, "oops") {
		t.Errorf("stderr %q lacks the command's stderr", errs)
	}
	if _, errs, code := cli.cli("exec", "--shell", "--timeout", "1s", "demo", "--", "sleep 30"); code != 124 {
		t.Errorf("timed out command: exit %d (want 124), stderr %q", code, errs)
	}
	if _, errs, code := cli.cli("exec", "nope", "--", "true"); code != 1 || !strings.Contains(errs, "NOT_FOUND") {
		t.Errorf("unknown project: exit %d, stderr %q", code, errs)
	}
	id, _, code := cli.cli("exec", "--detach", "demo", "--", "echo", "later")
	if code != 0 {
		t.Fatalf("--detach: exit %d", code)
	}
	if out, errs, code := cli.cli("logs", "--follow", strings.TrimSpace(id)); code != 0 || out != "later\n" {
		t.Errorf("logs --follow: exit %d, stdout %q, stderr %q", code, out, errs)
	}
}

// TestE2E_ShutdownDrainsCommands stops the server with SIGTERM while two
// commands run: the short one finishes, the long one ends INTERRUPTED when
// the shutdown timeout passes, and both ends are recorded.
func TestE2E_ShutdownDrainsCommands(t *testing.T) {
	in := newInstance(t, "RDEV_SHUTDOWN_TIMEOUT=3s", "RDEV_PER_PROJECT_COMMANDS=2")
	s := in.serve()
	token, _ := in.createKey("--name", "drain", "--admin")
	ids := map[string]string{}
	for name, shell := range map[string]string{"short": "sleep 1; echo done", "long": "sleep 60"} {
		r := s.query(token, `mutation($s: String!) { executeCommand(input: {projectId: "demo", shell: $s}) { command { id } } }`, map[string]any{"s": shell})
		if len(r.Errors) > 0 {
			t.Fatalf("%+v", r.Errors)
		}
		ids[name] = r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r := s.query(token, `{ queue { running } }`, nil)
		if q, _ := r.Data["queue"].(map[string]any); q != nil && q["running"] == float64(2) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the commands did not start")
		}
	}
	s.stop()

	s2 := in.serve()
	for name, want := range map[string]string{"short": "SUCCEEDED", "long": "INTERRUPTED"} {
		r := s2.query(token, `query($id: ID!) { command(id: $id) { status reason } }`, map[string]any{"id": ids[name]})
		c, _ := r.Data["command"].(map[string]any)
		if c == nil || c["status"] != want {
			t.Errorf("%s command: %+v, want %s", name, r, want)
		}
	}
}

// TestE2E_CrashInterruptsNeverReruns kills the server (SIGKILL) while a
// command runs: the command's process dies with it, and after a restart the
// command ends INTERRUPTED once its lease expires, and it never runs again.
func TestE2E_CrashInterruptsNeverReruns(t *testing.T) {
	in := newInstance(t, "RDEV_LEASE_TTL=1s")
	s := in.serve()
	token, _ := in.createKey("--name", "crash", "--admin")
	r := s.query(token, `mutation { executeCommand(input: {projectId: "demo", shell: "echo started >> starts.log; echo $$ > crash.pid; exec sleep 60"}) { command { id } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
	id := r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	pids := readPIDs(t, filepath.Join(in.workspace, "demo", "crash.pid"), 1)
	_ = s.cmd.Process.Kill()
	<-s.exited
	if !waitGone(pids[0], 5*time.Second) {
		t.Errorf("the command's process %d outlived the SIGKILLed server", pids[0])
		_ = syscall.Kill(pids[0], syscall.SIGKILL)
	}

	s2 := in.serve()
	var c map[string]any
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r := s2.query(token, `query($id: ID!) { command(id: $id) { status reason } }`, map[string]any{"id": id})
		if c, _ = r.Data["command"].(map[string]any); c != nil && c["status"] == "INTERRUPTED" {
			break
		}
	}
	if c == nil || c["status"] != "INTERRUPTED" {
		t.Fatalf("after the crash the command is %+v, want INTERRUPTED", c)
	}
	time.Sleep(1500 * time.Millisecond) // a dispatcher would have re-run it by now
	starts, _ := os.ReadFile(filepath.Join(in.workspace, "demo", "starts.log"))
	if n := strings.Count(string(starts), "started"); n != 1 {
		t.Errorf("the command started %d times, want once", n)
	}
}

// TestE2E_RestartTakesOver kills the server (SIGKILL) while a command runs,
// with a lease of ten minutes: the next server on the same host knows its
// predecessor is gone and interrupts the command as it starts, instead of
// holding the project's slot until the lease expires.
func TestE2E_RestartTakesOver(t *testing.T) {
	in := newInstance(t, "RDEV_LEASE_TTL=10m")
	s := in.serve()
	token, _ := in.createKey("--name", "restart", "--admin")
	r := s.query(token, `mutation { executeCommand(input: {projectId: "demo", shell: "echo $$ > run.pid; exec sleep 300"}) { command { id } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
	id := r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	pids := readPIDs(t, filepath.Join(in.workspace, "demo", "run.pid"), 1)
	_ = s.cmd.Process.Kill()
	<-s.exited
	if !waitGone(pids[0], 5*time.Second) {
		_ = syscall.Kill(pids[0], syscall.SIGKILL)
	}

	s2 := in.serve()
	var c map[string]any
	// Far less than the lease: only a takeover ends the command in time.
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		r := s2.query(token, `query($id: ID!) { command(id: $id) { status reason } }`, map[string]any{"id": id})
		if c, _ = r.Data["command"].(map[string]any); c != nil && c["status"] == "INTERRUPTED" {
			break
		}
	}
	if c == nil || c["status"] != "INTERRUPTED" || !strings.Contains(c["reason"].(string), "successor") {
		t.Fatalf("after the restart the command is %+v, want INTERRUPTED, taken over", c)
	}
	r = s2.query(token, `mutation { executeCommand(input: {projectId: "demo", shell: "echo next"}) { command { id } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
}

// TestE2E_CrashEndsOrphans kills the server (SIGKILL) while a command runs
// that started a process of its own in the background: the command's main
// process dies with the server, the background one lives on, and the next
// server on the same data directory ends it.
func TestE2E_CrashEndsOrphans(t *testing.T) {
	in := newInstance(t)
	s := in.serve()
	token, _ := in.createKey("--name", "orphans", "--admin")
	r := s.query(token, `mutation { executeCommand(input: {projectId: "demo", shell: "sleep 300 & echo $! > orphan.pid; exec sleep 300"}) { command { id } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
	orphan := readPIDs(t, filepath.Join(in.workspace, "demo", "orphan.pid"), 1)[0]
	t.Cleanup(func() { _ = syscall.Kill(orphan, syscall.SIGKILL) })
	_ = s.cmd.Process.Kill()
	<-s.exited
	time.Sleep(200 * time.Millisecond)
	if endedOrZombie(orphan) {
		t.Fatal("the background process died with the server: nothing to test")
	}
	s2 := in.serve()
	for deadline := time.Now().Add(5 * time.Second); !endedOrZombie(orphan); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the background process %d outlived the restart", orphan)
		}
	}
	if !s2.waitOutput("ended the processes of commands an earlier rdev left running") {
		t.Errorf("the restarted server did not log what it ended:\n%s", s2.output())
	}
}

// endedOrZombie reports whether process pid has ended: gone, or a zombie
// that its new parent has not reaped.
func endedOrZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || len(b) < i+3 || b[i+2] == 'Z' || b[i+2] == 'X'
}
