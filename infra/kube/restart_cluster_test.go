package kube

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/rdev-hq/rdev/domain"
)

// TestBreaker_APIServerRestart stops the kube-apiserver process of a
// dedicated cluster and starts it again: the breaker opens, callers get
// UNAVAILABLE at once while reads keep coming from the cache, and it closes
// once the server is back.
func TestBreaker_APIServerRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster of its own")
	}
	t.Parallel()
	mustCluster(t) // the same requirements, and the same skip or failure
	dir := t.TempDir()
	script, _ := filepath.Abs(filepath.Join("..", "..", "scripts", "testcluster.sh"))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "bash", script, "start", dir).CombinedOutput(); err != nil {
		t.Fatalf("testcluster.sh start: %v: %s", err, lastLines(string(out), 15))
	}
	t.Cleanup(func() { _ = exec.Command("bash", script, "stop", dir).Run() })

	rc, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	c := &testCluster{rest: rc, dir: dir}
	if c.client, err = newClients(c); err != nil {
		t.Fatal(err)
	}
	k := newKwokProject(t, c, Config{Breaker: BreakerSettings{Failures: 2, OpenFor: time.Second}})
	ex := k.executor()

	argv, pid := apiserverProcess(t, dir)
	if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string {
		if localAlive(pid) {
			return "kube-apiserver still runs"
		}
		return ""
	})

	eventually(t, 20*time.Second, func() string {
		_, err := ex.Exec(t.Context(), shReq(k.proj, "true"), nil, nil)
		if domain.ErrorCode(err) != domain.EUNAVAILABLE {
			return "exec with the API server stopped: " + domain.ErrorMessage(err)
		}
		if s := k.cluster.Breaker().State(); s != "open" {
			return "breaker " + s
		}
		return ""
	})
	start := time.Now()
	if _, err := ex.Exec(t.Context(), shReq(k.proj, "true"), nil, nil); !strings.Contains(domain.ErrorMessage(err), "retry in") {
		t.Errorf("while open: %v, want a retry hint", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("an open breaker took %v to refuse", d)
	}
	// Reads are served from the cache meanwhile.
	if p, err := k.projects.FindProjectByID(t.Context(), "p"); err != nil || p.Status != domain.ProjectRunning {
		t.Errorf("cached read while the API server is down: %+v, %v", p, err)
	}

	restartAPIServer(t, dir, argv)
	eventually(t, 60*time.Second, func() string {
		res, err := ex.Exec(t.Context(), shReq(k.proj, "echo back"), nil, nil)
		if err != nil || res.ExitCode != 0 {
			return "exec after the restart: " + domain.ErrorMessage(err)
		}
		return ""
	})
	if s := k.cluster.Breaker().State(); s != "closed" {
		t.Errorf("breaker %s after the API server came back, want closed", s)
	}
}

// apiserverProcess returns the command line and PID of the cluster's
// kube-apiserver.
func apiserverProcess(t *testing.T, dir string) ([]string, int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kube-apiserver.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00"), pid
}

// restartAPIServer starts the kube-apiserver again the way the script did
// (own session, log in dir), and records its PID for the script's stop.
func restartAPIServer(t *testing.T, dir string, argv []string) {
	t.Helper()
	log, err := os.OpenFile(filepath.Join(dir, "kube-apiserver.log"), os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	if err := os.WriteFile(filepath.Join(dir, "kube-apiserver.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}
