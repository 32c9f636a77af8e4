package kube

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/exectest"
)

// TestExecutor_ContractKubelet runs the executor contract through client-go's
// executors against the kubelet's remotecommand server, whose runtime runs
// the commands as local processes.
func TestExecutor_ContractKubelet(t *testing.T) {
	ep := newExecEndpoint(t, time.Hour)
	exectest.TestExecutor(t, func(t *testing.T) (domain.Executor, *domain.Project) {
		ex, proj, _ := newHarnessExecutor(t, ep)
		return ex, proj
	})
}

func runHarness(t *testing.T, ctx context.Context, ex *Executor, req domain.ExecRequest) (domain.ExecResult, string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	res, err := ex.Exec(ctx, req, &stdout, &stderr)
	return res, stdout.String(), stderr.String(), err
}

func shReq(proj *domain.Project, script string, args ...string) domain.ExecRequest {
	return domain.ExecRequest{Project: proj, Argv: append([]string{"sh", "-c", script, "sh"}, args...)}
}

func TestExecutor_Kubelet(t *testing.T) {
	ep := newExecEndpoint(t, time.Hour)

	t.Run("NoShellInjection", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newHarnessExecutor(t, ep)
		evil := []string{`$(touch injected)`, "`touch injected`", `'; touch injected; '`, `"; touch injected; "`, "a\nb"}
		req := domain.ExecRequest{Project: proj, Argv: append([]string{"printf", "%s|"}, evil...),
			Env: map[string]string{"RDEV_X": `$(touch injected)'"`}}
		res, out, _, err := runHarness(t, t.Context(), ex, req)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("Exec = %+v, %v", res, err)
		}
		if want := strings.Join(evil, "|") + "|"; out != want {
			t.Errorf("stdout = %q, want %q", out, want)
		}
		req = shReq(proj, `printf %s "$RDEV_X"; ls injected 2>/dev/null`)
		req.Env = map[string]string{"RDEV_X": `$(touch injected)'"`}
		res, out, _, err = runHarness(t, t.Context(), ex, req)
		if err != nil {
			t.Fatal(err)
		}
		if out != `$(touch injected)'"` || res.ExitCode == 0 {
			t.Errorf("env printed %q (exit %d); the file 'injected' must not exist", out, res.ExitCode)
		}
	})

	t.Run("ExitStatusAbove128IsSignal", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newHarnessExecutor(t, ep)
		for code, want := range map[int]domain.ExecResult{
			128: {ExitCode: 128}, 130: {ExitCode: -1, Signal: "SIGINT"}, 137: {ExitCode: -1, Signal: "SIGKILL"},
			200: {ExitCode: 200}, 255: {ExitCode: 255},
		} {
			res, _, _, err := runHarness(t, t.Context(), ex, shReq(proj, "exit "+itoa(code)))
			if err != nil || res != want {
				t.Errorf("exit %d: %+v, %v; want %+v", code, res, err, want)
			}
		}
	})

	t.Run("ProgramNotExecutable", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newHarnessExecutor(t, ep)
		if err := os.WriteFile(filepath.Join(ep.dir, "notexec"), []byte("echo hi\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, _, _, err := runHarness(t, t.Context(), ex, domain.ExecRequest{Project: proj, Argv: []string{"./notexec"}})
		if domain.ErrorCode(err) != domain.EINVALID || !strings.Contains(domain.ErrorMessage(err), "not executable") {
			t.Errorf("err = %v, want EINVALID 'not executable'", err)
		}
		// A program's own status 127 is a status, not a missing program.
		res, _, _, err := runHarness(t, t.Context(), ex, shReq(proj, "exit 127"))
		if err != nil || res.ExitCode != 127 {
			t.Errorf("exit 127: %+v, %v", res, err)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newHarnessExecutor(t, ep)
		for name, req := range map[string]domain.ExecRequest{
			"NoProject":  {Argv: []string{"true"}},
			"EmptyArgv":  {Project: proj},
			"NUL":        {Project: proj, Argv: []string{"echo", "a\x00b"}},
			"EnvName":    {Project: proj, Argv: []string{"true"}, Env: map[string]string{"A-B": "x"}},
			"WorkdirAbs": {Project: proj, Argv: []string{"true"}, Workdir: "/etc"},
			"WorkdirUp":  {Project: proj, Argv: []string{"true"}, Workdir: "a/../../b"},
			"Network":    {Project: proj, Argv: []string{"true"}, Network: domain.NetworkNone},
		} {
			if _, err := ex.Exec(t.Context(), req, nil, nil); domain.ErrorCode(err) != domain.EINVALID {
				t.Errorf("%s: err = %v, want EINVALID", name, err)
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := ex.Exec(ctx, shReq(proj, "true"), nil, nil); err != context.Canceled {
			t.Errorf("cancelled ctx: err = %v, want context.Canceled", err)
		}
	})

	t.Run("EnvCannotSteerTheWrapper", func(t *testing.T) {
		t.Parallel()
		ex, proj, _ := newHarnessExecutor(t, ep)
		// Names the wrapper could use, and a PATH that moves the lookup.
		bin := t.TempDir()
		if err := os.WriteFile(filepath.Join(bin, "rdev-hello"), []byte("#!/bin/sh\necho hello from PATH\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"f": "/nonexistent/x", "n": "99", "p": "false", "IFS": "/", "PATH": bin + ":/usr/bin:/bin"}
		req := domain.ExecRequest{Project: proj, Argv: []string{"rdev-hello"}, Env: env}
		res, out, _, err := runHarness(t, t.Context(), ex, req)
		if err != nil || res.ExitCode != 0 || out != "hello from PATH\n" {
			t.Errorf("Exec = %+v, %q, %v", res, out, err)
		}
		req = shReq(proj, `printf '%s|%s|%s' "$f" "$n" "$p"`)
		req.Env = env
		if _, out, _, err := runHarness(t, t.Context(), ex, req); err != nil || out != "/nonexistent/x|99|false" {
			t.Errorf("variables seen by the command: %q, %v", out, err)
		}
		req = shReq(proj, "true")
		req.Env = map[string]string{"_rdev_f": "x"}
		if _, err := ex.Exec(t.Context(), req, nil, nil); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("reserved name: %v, want EINVALID", err)
		}
	})

	t.Run("ProjectRoot", func(t *testing.T) {
		t.Parallel()
		for root, wd := range map[string]string{"/": "tmp", ep.dir: ""} {
			ex, proj, _ := newHarnessExecutor(t, ep, WithProjectRoot(root))
			req := domain.ExecRequest{Project: proj, Argv: []string{"pwd", "-P"}, Workdir: wd}
			want, _ := filepath.EvalSymlinks(filepath.Join(root, wd))
			if res, out, _, err := runHarness(t, t.Context(), ex, req); err != nil || res.ExitCode != 0 || out != want+"\n" {
				t.Errorf("root %s, workdir %q: %+v, %q, %v; want %s", root, wd, res, out, err, want)
			}
		}
		ex, proj, _ := newHarnessExecutor(t, ep, WithProjectRoot("/nonexistent-rdev-root"))
		if _, err := ex.Exec(t.Context(), shReq(proj, "true"), nil, nil); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("missing root: %v, want EINVALID", err)
		}
	})

	t.Run("KillLeavesNoFiles", func(t *testing.T) {
		t.Parallel()
		ex, proj, state := newHarnessExecutor(t, ep)
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		res, _, _, err := runHarness(t, ctx, ex, shReq(proj, "sleep 30"))
		if err != nil || res.Signal != "SIGTERM" {
			t.Fatalf("Exec = %+v, %v; want SIGTERM", res, err)
		}
		if left := ls(t, state); left != "" {
			t.Errorf("state directory holds %s after the kill", left)
		}
	})
}

// TestExecutor_SilentCommandOutlivesIdleTimeout: a command that writes
// nothing for longer than the endpoint's idle timeout is not cut, because
// the stream sends pings.
func TestExecutor_SilentCommandOutlivesIdleTimeout(t *testing.T) {
	t.Parallel()
	ep := newExecEndpoint(t, 6*time.Second)
	ex, proj, _ := newHarnessExecutor(t, ep)
	start := time.Now()
	res, out, _, err := runHarness(t, t.Context(), ex, shReq(proj, "sleep 9; echo done"))
	if err != nil || res.ExitCode != 0 || out != "done\n" {
		t.Fatalf("after %v: Exec = %+v, %q, %v", time.Since(start), res, out, err)
	}
}

// TestExecutor_PidFilesPruned: finished commands' pid files do not pile up
// in the state directory. A warm wrapper prunes when it opens, before its
// command is known, so the files of the commands since the newest one
// opened are left.
func TestExecutor_PidFilesPruned(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		warm time.Duration
		max  int
	}{{"Cold", 0, 1}, {"Warm", DefaultWarmIdle, 1 + warmPerTarget}} {
		t.Run(tt.name, func(t *testing.T) {
			ep := newExecEndpoint(t, time.Hour)
			ex, proj, state := newHarnessExecutor(t, ep, WithWarmIdle(tt.warm))
			for range 10 {
				if res, _, _, err := runHarness(t, t.Context(), ex, shReq(proj, "true")); err != nil || res.ExitCode != 0 {
					t.Fatal(res, err)
				}
			}
			if left := strings.Fields(ls(t, state)); len(left) > tt.max {
				t.Errorf("state directory holds %v after 10 commands, want at most %d", left, tt.max)
			}
		})
	}
}

// TestExecutor_PruneKeepsLiveCommands: pruning never removes the pid file of
// a command that still runs, so it can still be stopped.
func TestExecutor_PruneKeepsLiveCommands(t *testing.T) {
	t.Parallel()
	ep := newExecEndpoint(t, time.Hour)
	ex, proj, _ := newHarnessExecutor(t, ep)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &lineWriter{}
	done := make(chan domain.ExecResult, 1)
	go func() {
		res, _ := ex.Exec(ctx, shReq(proj, `echo $$; sleep 30`), out, nil)
		done <- res
	}()
	pid := out.pids(t, 1)[0]
	for range 3 {
		if _, _, _, err := runHarness(t, t.Context(), ex, shReq(proj, "true")); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	if res := <-done; res.Signal != "SIGTERM" {
		t.Errorf("result %+v, want SIGTERM", res)
	}
	if localAlive(pid) {
		t.Errorf("process %d survived the cancel: its pid file was pruned", pid)
	}
}
