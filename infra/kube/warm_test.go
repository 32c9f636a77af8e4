package kube

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/exectest"
)

// waitWarm waits until ex holds a ready warm stream for the project "p".
func waitWarm(t testing.TB, ex *Executor) *warmStream {
	t.Helper()
	tg, err := ex.projects.Target("p")
	if err != nil {
		t.Fatal(err)
	}
	var w *warmStream
	eventually(t, 10*time.Second, func() string {
		ex.warm.mu.Lock()
		ws := slices.Clone(ex.warm.warm[tg])
		ex.warm.mu.Unlock()
		if len(ws) < warmPerTarget {
			return strconv.Itoa(len(ws)) + " warm streams"
		}
		for _, w = range ws {
			select {
			case <-w.ready:
			default:
				return "a warm stream is not ready"
			}
		}
		return ""
	})
	return w
}

// newWarmExecutor returns an executor over a new exec endpoint that has
// run one command, with its warm streams ready (the last one opened is
// returned).
func newWarmExecutor(t *testing.T, opts ...ExecutorOption) (*execEndpoint, *Executor, *domain.Project, *warmStream) {
	t.Helper()
	ep := newExecEndpoint(t, time.Hour)
	ex, proj, _ := newHarnessExecutor(t, ep, opts...)
	if _, err := ex.Exec(t.Context(), shReq(proj, "true"), nil, nil); err != nil {
		t.Fatal(err)
	}
	return ep, ex, proj, waitWarm(t, ex)
}

// ranCold reports whether an exec of its own carried marker in its argv.
func ranCold(ep *execEndpoint, marker string) bool {
	return slices.ContainsFunc(ep.execs(), func(cmd []string) bool { return slices.Contains(cmd, marker) })
}

// warmProcesses returns the PIDs of the processes of warm wrappers running
// in dir: the wrappers and their watchdogs' sleeps. With wrappersOnly, the
// wrappers alone (the exec endpoint's children).
func warmProcesses(dir string, wrappersOnly bool) []string {
	var pids []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		if cwd, err := os.Readlink(p + "/cwd"); err != nil || cwd != dir {
			continue
		}
		cmdline, err := os.ReadFile(p + "/cmdline")
		stat, serr := os.ReadFile(p + "/stat")
		if err != nil || serr != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		warm := bytes.Contains(cmdline, []byte("\x00rdev-warm\x00"))
		if wrappersOnly && (!warm || fields[1] != strconv.Itoa(os.Getpid())) {
			continue
		}
		if warm || bytes.HasPrefix(cmdline, []byte("sleep\x00")) {
			pids = append(pids, filepath.Base(p))
		}
	}
	return pids
}

// zombies returns the zombie processes in the process groups pgids.
func zombies(pgids []string) []string {
	var found []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		stat, err := os.ReadFile(p + "/stat")
		if err != nil {
			continue
		}
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) >= 3 && fields[0] == "Z" && slices.Contains(pgids, fields[2]) {
			found = append(found, filepath.Base(p))
		}
	}
	return found
}

// noWarmProcesses waits until no process of a warm wrapper runs in dir.
func noWarmProcesses(t *testing.T, dir string) {
	t.Helper()
	eventually(t, 10*time.Second, func() string {
		if pids := warmProcesses(dir, false); len(pids) > 0 {
			return "processes of warm wrappers still running: " + strings.Join(pids, " ")
		}
		return ""
	})
}

// TestExecutor_ContractKubeletWarm runs the executor contract with every
// command on a warm stream: the executor has run one command before, and
// its warm stream is ready.
func TestExecutor_ContractKubeletWarm(t *testing.T) {
	ep := newExecEndpoint(t, time.Hour)
	exectest.TestExecutor(t, func(t *testing.T) (domain.Executor, *domain.Project) {
		ex, proj, _ := newHarnessExecutor(t, ep)
		if _, err := ex.Exec(t.Context(), shReq(proj, "true"), nil, nil); err != nil {
			t.Fatal(err)
		}
		waitWarm(t, ex)
		return ex, proj
	})
}

// TestExecutor_ContractKubeletCold runs it with warm streams off.
func TestExecutor_ContractKubeletCold(t *testing.T) {
	ep := newExecEndpoint(t, time.Hour)
	exectest.TestExecutor(t, func(t *testing.T) (domain.Executor, *domain.Project) {
		ex, proj, _ := newHarnessExecutor(t, ep, WithWarmIdle(0))
		return ex, proj
	})
}

func TestExecutor_Warm(t *testing.T) {
	t.Run("SecondCommandTakesTheWarmStream", func(t *testing.T) {
		ep, ex, proj, _ := newWarmExecutor(t)
		res, out, errOut, err := runHarness(t, t.Context(), ex, shReq(proj, `echo out; echo err >&2; exit 3`, "marker-second"))
		if err != nil || res.ExitCode != 3 || out != "out\n" || errOut != "err\n" {
			t.Fatalf("Exec = %+v, %v, stdout %q, stderr %q", res, err, out, errOut)
		}
		if ranCold(ep, "marker-second") {
			t.Error("the second command got an exec of its own, not the warm stream")
		}
		// It took the warm stream and started the next one.
		waitWarm(t, ex)
	})

	t.Run("ArgumentsArriveExactly", func(t *testing.T) {
		ep, ex, proj, _ := newWarmExecutor(t)
		for i, a := range awkward {
			waitWarm(t, ex)
			req := domain.ExecRequest{Project: proj, Argv: []string{"printf", "%s|", a, "marker-args"},
				Env: map[string]string{"RDEV_V": a}, Workdir: "."}
			res, out, _, err := runHarness(t, t.Context(), ex, req)
			if err != nil || res.ExitCode != 0 || out != a+"|marker-args|" {
				t.Errorf("arg %d %q: %+v, %v, stdout %q", i, a, res, err, out)
			}
			waitWarm(t, ex)
			req = shReq(proj, `printf %s "$RDEV_V"`)
			req.Env = map[string]string{"RDEV_V": a}
			if res, out, _, err := runHarness(t, t.Context(), ex, req); err != nil || res.ExitCode != 0 || out != a {
				t.Errorf("env %d %q: %+v, %v, stdout %q", i, a, res, err, out)
			}
		}
		if ranCold(ep, "marker-args") {
			t.Error("a command got an exec of its own")
		}
		if _, err := os.Stat(filepath.Join(ep.dir, "injected")); err == nil {
			t.Error("an argument was run as shell code")
		}
	})

	t.Run("LargeRequestGetsItsOwnExec", func(t *testing.T) {
		ep, ex, proj, _ := newWarmExecutor(t)
		big := strings.Repeat("x", maxWarmRequest)
		res, out, _, err := runHarness(t, t.Context(), ex, domain.ExecRequest{Project: proj, Argv: []string{"printf", "%s", big, "marker-big"}})
		if err != nil || res.ExitCode != 0 || out != big+"marker-big" {
			t.Fatalf("Exec = %+v, %v, %d bytes of stdout", res, err, len(out))
		}
		if !ranCold(ep, "marker-big") {
			t.Error("a request over maxWarmRequest went over the warm stream")
		}
	})

	t.Run("WrapperGoneBeforeTheRequestRunsOnceCold", func(t *testing.T) {
		ep, ex, proj, w := newWarmExecutor(t)
		// The idle wrapper exits, as its watchdog makes it: the stream ends
		// by an exit status, without having run anything.
		if pids := warmProcesses(ep.dir, true); len(pids) != warmPerTarget {
			t.Fatalf("warm wrappers running: %v, want %d", pids, warmPerTarget)
		}
		for _, pid := range warmProcesses(ep.dir, false) {
			if err := killPID(pid); err != nil {
				t.Fatal(err)
			}
		}
		<-w.done
		// Taken before the pool saw it end: the command gets its own exec.
		ex.warm.mu.Lock()
		tg, _ := ex.projects.Target("p")
		ex.warm.warm[tg] = []*warmStream{w}
		ex.warm.mu.Unlock()
		res, out, _, err := runHarness(t, t.Context(), ex, shReq(proj, `echo ran >>count; cat count`, "marker-once"))
		if err != nil || res.ExitCode != 0 || out != "ran\n" {
			t.Fatalf("Exec = %+v, %v, stdout %q (want the command run once)", res, err, out)
		}
		if !ranCold(ep, "marker-once") {
			t.Error("the command did not get an exec of its own")
		}
	})

	t.Run("CloseEndsIdleWrappers", func(t *testing.T) {
		ep, ex, proj, _ := newWarmExecutor(t)
		if ready, opening := ex.WarmStreams(); ready != warmPerTarget || opening != 0 {
			t.Errorf("WarmStreams() = %d ready, %d opening; want %d, 0", ready, opening, warmPerTarget)
		}
		ex.Close()
		noWarmProcesses(t, ep.dir)
		if ready, opening := ex.WarmStreams(); ready+opening != 0 {
			t.Errorf("after Close, WarmStreams() = %d ready, %d opening", ready, opening)
		}
		// Commands after Close get execs of their own.
		if res, _, _, err := runHarness(t, t.Context(), ex, shReq(proj, "true", "marker-closed")); err != nil || res.ExitCode != 0 || !ranCold(ep, "marker-closed") {
			t.Errorf("after Close: %+v, %v, own exec %v", res, err, ranCold(ep, "marker-closed"))
		}
	})

	t.Run("IdleStreamIsClosed", func(t *testing.T) {
		ep, _, _, w := newWarmExecutor(t, WithWarmIdle(300*time.Millisecond))
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			t.Fatal("an idle warm stream was not closed after its idle time")
		}
		noWarmProcesses(t, ep.dir)
	})

	t.Run("WatchdogEndsAnOrphanedWrapper", func(t *testing.T) {
		// A runtime that never passes EOF on (kwok's) leaves an idle
		// wrapper to its watchdog; here it fires while the stream is open.
		ep := newExecEndpoint(t, time.Hour)
		ex, proj, _ := newHarnessExecutor(t, ep, WithWarmIdle(time.Hour))
		ex.warm.slack = -time.Hour + time.Second // the watchdog fires after 1 s
		if _, err := ex.Exec(t.Context(), shReq(proj, "true"), nil, nil); err != nil {
			t.Fatal(err)
		}
		w := waitWarm(t, ex)
		select {
		case <-w.done:
		case <-time.After(10 * time.Second):
			t.Fatal("the watchdog did not end an idle warm wrapper")
		}
		if res, ok := exitResult(w.err); !ok || res.ExitCode != 0 || w.took() {
			t.Errorf("the wrapper ended with %v (%+v), took the request %v; want exit status 0", w.err, res, w.took())
		}
		noWarmProcesses(t, ep.dir)
	})

	t.Run("WatchdogGoesWithItsWrapper", func(t *testing.T) {
		ep, ex, proj, _ := newWarmExecutor(t)
		if n := len(warmProcesses(ep.dir, false)); n != 2*warmPerTarget {
			t.Fatalf("%d processes of warm wrappers, want 2 each (wrapper, sleep)", n)
		}
		// Commands take the streams: their watchdogs are gone with the
		// idle wait, reaped, and the next warm streams have their own.
		groups := warmProcesses(ep.dir, true)
		for range 2 * warmPerTarget {
			if _, err := ex.Exec(t.Context(), shReq(proj, "true"), nil, nil); err != nil {
				t.Fatal(err)
			}
		}
		if z := zombies(groups); len(z) > 0 {
			t.Errorf("zombies left in the commands' process groups: %v", z)
		}
		waitWarm(t, ex)
		eventually(t, 10*time.Second, func() string {
			if n := len(warmProcesses(ep.dir, false)); n != 2*warmPerTarget {
				return strconv.Itoa(n) + " processes of warm wrappers, want 2 each"
			}
			return ""
		})
		ex.Close()
		noWarmProcesses(t, ep.dir)
	})

	t.Run("CancelOnWarmStreamKills", func(t *testing.T) {
		ep, ex, proj, _ := newWarmExecutor(t)
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(500*time.Millisecond, cancel)
		res, _, _, err := runHarness(t, ctx, ex, shReq(proj, `sleep 300 & echo $! >bg; sleep 300`, "marker-cancel"))
		if err != nil || res.Signal != "SIGTERM" {
			t.Fatalf("Exec = %+v, %v; want SIGTERM", res, err)
		}
		if ranCold(ep, "marker-cancel") {
			t.Error("the command got an exec of its own")
		}
		b, err := os.ReadFile(filepath.Join(ep.dir, "bg"))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, func() string {
			if syscall.Kill(pid, 0) == nil {
				return "the command's background child " + strconv.Itoa(pid) + " is still running"
			}
			return ""
		})
	})
}

func killPID(pid string) error {
	n, err := strconv.Atoi(pid)
	if err != nil {
		return err
	}
	return syscall.Kill(n, syscall.SIGTERM)
}
