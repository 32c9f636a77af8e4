package testenv

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"
)

// PGCluster is a PostgreSQL cluster of a test's own: made by initdb in a
// temporary directory, listening on a free loopback port, and removed when
// the test ends. Fault tests stop, restart and pause it. It only ever
// signals the postmaster it started and that postmaster's children, so the
// machine's own PostgreSQL is never touched.
type PGCluster struct {
	bin  string // the directory of initdb, pg_ctl and postgres
	dir  string // the temporary directory: data/ and postgres.log
	data string
	log  string
	port int
	// cred is whom PostgreSQL runs as: the postgres user when this process
	// is root (initdb and postgres refuse root), else nil (this user).
	cred *syscall.Credential

	mu     sync.Mutex
	proc   *exec.Cmd     // the running postmaster; nil while stopped
	exited chan struct{} // closed once proc has exited
	paused []int         // the processes Pause stopped
}

// StartPGCluster initialises and starts a cluster for the test, stopped
// (immediately) and deleted when the test ends. It skips or fails the test,
// per RequireService, if PostgreSQL's server programs are not installed or
// the cluster does not start.
func StartPGCluster(tb testing.TB) *PGCluster {
	tb.Helper()
	c, err := newPGCluster()
	RequireService(tb, "PostgreSQL's server programs (initdb, pg_ctl, postgres; Debian package postgresql)", err)
	tb.Cleanup(c.remove)
	if err := c.initdb(); err != nil {
		tb.Fatalf("initdb: %v\n%s", err, c.LogTail(20))
	}
	// Another process may take the free port before postgres binds it:
	// try a few.
	for try := 1; ; try++ {
		err := c.Start()
		if err == nil {
			break
		}
		if try == 3 {
			tb.Fatalf("starting PostgreSQL: %v\n%s", err, c.LogTail(20))
		}
		if c.port, err = freePort(); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

func newPGCluster() (*PGCluster, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	c := &PGCluster{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root: no postgres user to run it as: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if c.dir, err = os.MkdirTemp("", "rdev-pg-"); err != nil {
		return nil, err
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			_ = os.RemoveAll(c.dir)
			return nil, err
		}
	}
	c.data, c.log = filepath.Join(c.dir, "data"), filepath.Join(c.dir, "postgres.log")
	if c.port, err = freePort(); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, err
	}
	return c, nil
}

// pgBinDir finds the directory holding initdb, pg_ctl and postgres: on
// PATH, or Debian's /usr/lib/postgresql/<version>/bin, newest first.
func pgBinDir() (string, error) {
	dirs := []string{}
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(found, func(a, b string) int { return pgVersion(b) - pgVersion(a) })
	for _, d := range append(dirs, found...) {
		ok := true
		for _, prog := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(d, prog)); err != nil {
				ok = false
			}
		}
		if ok {
			return d, nil
		}
	}
	return "", errors.New("initdb, pg_ctl and postgres are neither on PATH nor in /usr/lib/postgresql/*/bin")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func freePort() (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// command runs one of PostgreSQL's programs as the cluster's user, its
// output appended to the log (closeOutput closes the parent's copy once
// it has exited). PG* variables are left out of its
// environment, so none can point it at another cluster.
func (c *PGCluster) command(ctx context.Context, prog string, args ...string) (*exec.Cmd, error) {
	logf, err := os.OpenFile(c.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, prog), args...) //nolint:gosec // PostgreSQL's own programs, found by pgBinDir
	cmd.Dir = c.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.dir, "LANG=C", "LC_ALL=C", "TZ=UTC"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd, nil
}

// run runs prog to completion.
func (c *PGCluster) run(prog string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, err := c.command(ctx, prog, args...)
	if err != nil {
		return err
	}
	defer closeOutput(cmd)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", prog, strings.Join(args, " "), err)
	}
	return nil
}

func closeOutput(cmd *exec.Cmd) {
	if f, ok := cmd.Stdout.(*os.File); ok {
		_ = f.Close()
	}
}

func (c *PGCluster) initdb() error {
	// --no-sync only skips flushing the new files once; the server itself
	// runs with fsync on.
	return c.run("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
}

// URL returns the URL of the cluster's postgres database.
func (c *PGCluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the stopped cluster on its port and returns once it accepts
// queries (after crash recovery, if it was stopped immediately).
func (c *PGCluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc != nil {
		return errors.New("PostgreSQL is already running")
	}
	cmd, err := c.command(context.Background(), "postgres", "-D", c.data,
		"-p", strconv.Itoa(c.port), "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "max_connections=200")
	if err != nil {
		return err
	}
	// Should the test binary die, the postmaster dies with it (and its
	// children with the postmaster), rather than outliving it.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		closeOutput(cmd)
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		closeOutput(cmd)
		close(exited)
	}()
	c.proc, c.exited = cmd, exited
	if err := c.waitReady(exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		c.proc, c.exited = nil, nil
		return err
	}
	return nil
}

// waitReady waits until the cluster answers a query.
func (c *PGCluster) waitReady(exited <-chan struct{}) error {
	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(c.URL()), pgdriver.WithTimeout(5*time.Second)))
	defer func() { _ = db.Close() }()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := db.ExecContext(ctx, "SELECT 1")
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("postgres exited before it accepted connections (see its log)")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostgreSQL did not accept queries within a minute: %w", err)
		}
	}
}

// Stop stops the cluster with `pg_ctl stop -m mode`: "smart", "fast" (ends
// sessions, checkpoints) or "immediate" (no checkpoint: the next start
// recovers from the WAL, as after a crash).
func (c *PGCluster) Stop(mode string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stop(mode)
}

func (c *PGCluster) stop(mode string) error {
	if c.proc == nil {
		return errors.New("PostgreSQL is not running")
	}
	if len(c.paused) > 0 {
		return errors.New("PostgreSQL is paused; resume it first")
	}
	if err := c.run("pg_ctl", "stop", "-D", c.data, "-m", mode, "-w", "-t", "60"); err != nil {
		return err
	}
	select {
	case <-c.exited:
	case <-time.After(time.Minute):
		return errors.New("pg_ctl stop returned but the postmaster did not exit")
	}
	c.proc, c.exited = nil, nil
	return nil
}

// Restart does what `pg_ctl restart -m mode` does: stops the cluster in
// that mode and starts it again with the same settings and port.
func (c *PGCluster) Restart(mode string) error {
	if err := c.Stop(mode); err != nil {
		return err
	}
	return c.Start()
}

// Pause stops (SIGSTOP) the postmaster and every process it started, so
// that connections stay open and every query hangs, as when the database's
// host freezes. Resume continues them.
func (c *PGCluster) Pause() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil || len(c.paused) > 0 {
		return errors.New("PostgreSQL is not running, or already paused")
	}
	pm := c.proc.Process.Pid
	// The postmaster first: once it is stopped it starts no new children.
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		return err
	}
	c.paused = append([]int{pm}, childrenOf(pm)...)
	for _, pid := range c.paused[1:] {
		_ = syscall.Kill(pid, syscall.SIGSTOP)
	}
	// SIGSTOP takes effect asynchronously; report once it has.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		running := slices.ContainsFunc(c.paused, func(pid int) bool {
			s := procState(pid)
			return s != 'T' && s != 0
		})
		if !running {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("PostgreSQL's processes did not stop within 5s")
		}
	}
}

// Resume continues (SIGCONT) what Pause stopped.
func (c *PGCluster) Resume() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resume()
}

func (c *PGCluster) resume() error {
	if len(c.paused) == 0 {
		return errors.New("PostgreSQL is not paused")
	}
	var errs []error
	// Children first, so the postmaster finds them all running.
	for _, pid := range slices.Backward(c.paused) {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, err)
		}
	}
	c.paused = nil
	return errors.Join(errs...)
}

// LogTail returns the last n lines of the cluster's log (initdb's, pg_ctl's
// and the server's output).
func (c *PGCluster) LogTail(n int) string {
	b, err := os.ReadFile(c.log)
	if err != nil {
		return "(no PostgreSQL log: " + err.Error() + ")"
	}
	return lastLines(string(b), n)
}

// remove stops the cluster, whatever its state, and deletes its directory.
func (c *PGCluster) remove() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.paused) > 0 {
		_ = c.resume()
	}
	if c.proc != nil {
		if err := c.stop("immediate"); err != nil && c.proc != nil {
			_ = c.proc.Process.Kill()
			<-c.exited
		}
	}
	_ = os.RemoveAll(c.dir)
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := procParent(child); ok && ppid == pid {
			kids = append(kids, child)
		}
	}
	return kids
}

// procStat returns the fields of /proc/pid/stat after the command name
// (which may hold spaces and parentheses): state, ppid, ….
func procStat(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func procParent(pid int) (int, bool) {
	f := procStat(pid)
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// procState returns the state letter of pid (R, S, T, Z, …), 0 if it is
// gone.
func procState(pid int) byte {
	f := procStat(pid)
	if len(f) == 0 || f[0] == "" {
		return 0
	}
	return f[0][0]
}
