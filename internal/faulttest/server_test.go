package faulttest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// deployment is rdev as an operator runs it on several machines: servers
// (replicas) sharing one PostgreSQL database and, since the local executor
// runs commands in directories, one workspace. Each replica has its own
// data directory. Without a database URL it is rdev on one machine: one
// server with its SQLite database in its data directory.
type deployment struct {
	t         *testing.T
	dir       string
	env       []string
	workspace string
	data      string   // where the replicas' data directories are
	enter     []string // what every rdev process is run under, if anything (see useDisk)
}

// newDeployment returns a deployment on the database at dbURL, or on SQLite
// if dbURL is empty; extra are more environment variables for its servers
// and CLI (a later one wins).
func newDeployment(t *testing.T, dbURL string, extra ...string) *deployment {
	dir := t.TempDir()
	d := &deployment{t: t, dir: dir, workspace: filepath.Join(dir, "workspace"), data: filepath.Join(dir, "data")}
	d.env = append(os.Environ(),
		"DATABASE_URL="+dbURL,
		"RDEV_EXECUTOR=local",
		"RDEV_WORKSPACE="+d.workspace,
		"RDEV_LOG_FORMAT=text",
		// The suite submits faster than people do.
		"RATE_LIMIT_RPS=0", "RATE_LIMIT_EXECUTE_PER_MINUTE=0", "RDEV_MAX_QUEUED_PER_KEY=0",
		"RATE_LIMIT_STORE=memory",
	)
	d.env = append(d.env, extra...)
	return d
}

// useDisk puts the data directories of the deployment's replicas on disk,
// and runs its rdev processes where disk is mounted.
func (d *deployment) useDisk(disk *smallDisk) { d.data, d.enter = disk.dir, disk.enter }

// project returns the directory of the example project, demo.
func (d *deployment) project() string { return filepath.Join(d.workspace, "demo") }

// rdev returns the command that runs rdev with args in the deployment.
func (d *deployment) rdev(ctx context.Context, args ...string) *exec.Cmd {
	argv := append(append(slices.Clone(d.enter), rdevBin), args...)
	return exec.CommandContext(ctx, argv[0], argv[1:]...)
}

// createKey makes an admin key with `rdev keys create --admin` in the
// database r serves (the deployment's PostgreSQL, or r's SQLite) and
// returns its token.
func (d *deployment) createKey(r *replica) string {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(d.t.Context(), time.Minute)
	defer cancel()
	cmd := d.rdev(ctx, "keys", "create", "--json", "--name", "faults", "--admin")
	cmd.Env = r.cmd.Env
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("rdev keys create: %v: %s", err, stderrOf(err))
	}
	var k struct{ Token string }
	if err := json.Unmarshal(out, &k); err != nil || k.Token == "" {
		d.t.Fatalf("rdev keys create printed %q: %v", out, err)
	}
	return k.Token
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

// replica is one running `rdev serve` of a deployment.
type replica struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	url    string
	log    string // its stdout and stderr
	exited chan struct{}
}

var listening = regexp.MustCompile(`listening on (\S+)`)

// start starts a replica named name on a free loopback port, with data
// directory <data>/<name> unless dataOf names another replica's (a
// replacement takes over the directory of the one it replaces), and waits
// until it listens. It is stopped when the test ends.
func (d *deployment) start(name, dataOf string) *replica {
	d.t.Helper()
	if dataOf == "" {
		dataOf = name
	}
	r := &replica{t: d.t, name: name, log: filepath.Join(d.dir, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(r.log)
	if err != nil {
		d.t.Fatal(err)
	}
	// Not bound to the test's context: kill and stop end it.
	r.cmd = d.rdev(context.Background(), "serve", "--host", "127.0.0.1", "--port", "0")
	r.cmd.Env = append(append([]string{}, d.env...), "RDEV_DATA_DIR="+filepath.Join(d.data, dataOf))
	r.cmd.Stderr = logf
	// Should the test binary die, its servers die with it.
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pipe, err := r.cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		defer func() { _ = logf.Close() }()
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			_, _ = fmt.Fprintln(logf, sc.Text())
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(logf, pipe)
		_ = r.cmd.Wait()
		close(r.exited)
	}()
	select {
	case a := <-addr:
		r.url = "http://" + a
	case <-r.exited:
		d.t.Fatalf("rdev serve (%s) exited early:\n%s", name, r.logTail(30))
	case <-time.After(time.Minute):
		_ = r.cmd.Process.Kill()
		d.t.Fatalf("rdev serve (%s) did not start:\n%s", name, r.logTail(30))
	}
	d.t.Cleanup(r.stop)
	return r
}

// kill ends the replica with SIGKILL, as a crashed machine would.
func (r *replica) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// stop sends SIGTERM and waits for the replica to exit; the exit status is
// reported, not judged (the scenarios judge what clients saw).
func (r *replica) stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		if code := r.cmd.ProcessState.ExitCode(); code != 0 {
			r.t.Logf("rdev serve (%s) exited %d after SIGTERM:\n%s", r.name, code, r.logTail(20))
		}
	case <-time.After(time.Minute):
		_ = r.cmd.Process.Kill()
		<-r.exited
		r.t.Errorf("rdev serve (%s) ignored SIGTERM for a minute:\n%s", r.name, r.logTail(20))
	}
}

// logTail returns the last n lines the replica printed.
func (r *replica) logTail(n int) string {
	b, err := os.ReadFile(r.log)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// logCount counts the replica's log lines that contain s.
func (r *replica) logCount(s string) int {
	b, _ := os.ReadFile(r.log)
	return strings.Count(string(b), s)
}
