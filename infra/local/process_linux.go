package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rdev-hq/rdev/domain"
)

const (
	// copyBufferSize is the read size of each output pipe.
	copyBufferSize = 64 << 10
	// pollInterval is how often /proc is scanned while waiting for a
	// stopped process group to be gone.
	pollInterval = 20 * time.Millisecond
	// goneTimeout bounds the wait, after SIGKILL, for the group to be gone:
	// a process stuck in the kernel (uninterruptible sleep) can outlive
	// SIGKILL for a while, and Exec should not hang on it for ever.
	goneTimeout = 10 * time.Second
	// closeDelay is how long the pipes may stay open after the process
	// group is gone (held by a process that escaped the group) before they
	// are closed under it.
	closeDelay = 200 * time.Millisecond
)

// process is one started command: its main process, which leads a process
// group of its own, and the two goroutines that copy its output.
type process struct {
	cmd  *exec.Cmd
	pgid int
	// exited is closed when the main process has exited. It is not reaped
	// (waited for) until the end, so its PID, and with it the process
	// group ID, cannot be reused while this process still signals the group.
	exited chan struct{}
	// copied is closed when both output pipes have been read to the end or
	// closed.
	copied chan struct{}
	pipes  []*os.File
	// readers copy the two pipes; they tell how long rdev itself was busy
	// passing output on.
	readers [2]outputReader
}

// run starts cmd and follows it to its end (see Executor for the rules).
// l is the launch when cmd starts the sandbox launcher, nil otherwise.
func (e *Executor) run(ctx context.Context, cmd *exec.Cmd, l *launch, project string, stdout, stderr io.Writer) (domain.ExecResult, error) {
	// Pdeathsig kills the command's main process should rdev itself die
	// (its own children, if it leaves any, are not reached). The signal
	// follows the death of the thread that started the process, so that
	// thread is held for Start: a thread the runtime lets go of is kept.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{} // confine may have set one
	}
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Pdeathsig = true, syscall.SIGKILL
	outR, outW, err := os.Pipe()
	if err != nil {
		return domain.ExecResult{}, fmt.Errorf("local: output pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return domain.ExecResult{}, fmt.Errorf("local: output pipe: %w", err)
	}
	// The pipes' extra capacity counts until they are closed, when this
	// returns.
	widenedHere := widenPipe(outW) + widenPipe(errW)
	defer widened.Add(-widenedHere)
	// *os.File outputs are handed to the process as they are: os/exec starts
	// no copying goroutines of its own, and Wait does not wait for the pipes.
	cmd.Stdout, cmd.Stderr = outW, errW
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	// The write ends now belong to the process alone, so the read ends see
	// EOF once every process holding them has let go.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if l != nil && l.network != "" {
			err = netnsRefused(err, project, l.network)
		}
		return domain.ExecResult{}, startError(err, cmd.Args[0], project)
	}

	p := &process{
		cmd:    cmd,
		pgid:   cmd.Process.Pid,
		exited: make(chan struct{}),
		copied: make(chan struct{}),
		pipes:  []*os.File{outR, errR},
	}
	var wg sync.WaitGroup
	wg.Go(func() { p.readers[0].copy(stdout, outR) })
	wg.Go(func() { p.readers[1].copy(stderr, errR) })
	// Read from the start: a sandboxed command may be running, and writing,
	// before the launcher's report says so.
	if l != nil {
		if err := l.started(cmd); err != nil {
			wg.Wait() // at end-of-file: the launcher has exited
			outR.Close()
			errR.Close()
			return domain.ExecResult{}, startError(err, cmd.Args[0], project)
		}
	}
	go func() {
		waitExited(p.pgid)
		close(p.exited)
	}()
	go func() {
		wg.Wait()
		close(p.copied)
	}()
	// Recorded once its output is being read: writing the record takes a
	// file system's time, in which a fast writer would fill its pipe.
	defer e.recordGroup(p.pgid)()

	p.follow(ctx, e.grace, e.drain)
	for _, f := range p.pipes {
		f.Close()
	}
	// The main process exited long ago; this only reaps it.
	_ = cmd.Wait()
	return result(cmd.ProcessState)
}

// follow returns when the main process has exited, its output has been read,
// and, if it had to be stopped, its process group is gone.
func (p *process) follow(ctx context.Context, grace, drain time.Duration) {
	select {
	case <-p.exited:
		if p.waitCopied(ctx.Done(), drain) {
			return
		}
		// A process left behind holds the output open, or ctx ended.
	case <-ctx.Done():
	}
	p.stop(grace)
	<-p.exited
	p.awaitGone(goneTimeout)
	if !p.waitCopied(nil, closeDelay) {
		// Held by a process outside the group: stop reading. Close makes
		// the blocked reads return.
		for _, f := range p.pipes {
			f.Close()
		}
		<-p.copied
	}
}

// waitCopied waits for the output to be read to its end, and reports
// whether it was. It gives up when done is closed, or once period has
// passed not counting the time rdev itself was busy passing output on: a
// reader blocked because the output waits for storage (back-pressure) is
// not a process holding the pipe open, and what the pipe still holds must
// not be cut off.
func (p *process) waitCopied(done <-chan struct{}, period time.Duration) bool {
	start := time.Now()
	busy := p.busy(start)
	deadline := start.Add(period)
	for {
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-p.copied:
			t.Stop()
			return true
		case <-done:
			t.Stop()
			return false
		case <-t.C:
		}
		now := time.Now()
		extended := start.Add(period + p.busy(now) - busy)
		if !now.Before(extended) {
			return false
		}
		deadline = extended
	}
}

// busy returns how long, in all, the busier reader has spent passing output
// on, up to now.
func (p *process) busy(now time.Time) time.Duration {
	return max(p.readers[0].busyFor(now), p.readers[1].busyFor(now))
}

// outputReader copies one output pipe and keeps the time it spent in
// writes, which block while output waits for storage.
type outputReader struct {
	busy  atomic.Int64 // nanoseconds in writes that returned
	since atomic.Int64 // when the write under way began (Unix nanoseconds), 0 if none
}

// busyFor returns the time spent in writes so far, the one under way too.
func (r *outputReader) busyFor(now time.Time) time.Duration {
	b := r.busy.Load()
	if s := r.since.Load(); s != 0 {
		b += max(now.UnixNano()-s, 0)
	}
	return time.Duration(b)
}

// copy copies pipe to w until the pipe ends (see copyOutput).
func (r *outputReader) copy(w io.Writer, pipe io.Reader) {
	copyOutput(timedWriter{w, r}, pipe)
}

// timedWriter is a writer whose writes an outputReader times.
type timedWriter struct {
	w io.Writer
	r *outputReader
}

func (t timedWriter) Write(b []byte) (int, error) {
	if t.w == nil {
		return len(b), nil
	}
	start := time.Now().UnixNano()
	t.r.since.Store(start)
	n, err := t.w.Write(b)
	t.r.since.Store(0)
	t.r.busy.Add(time.Now().UnixNano() - start)
	return n, err
}

// stop sends SIGTERM to the process group, then SIGKILL once grace has
// passed unless every process in the group has ended by then.
func (p *process) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	deadline := time.NewTimer(grace)
	defer deadline.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			p.signal(syscall.SIGKILL)
			return
		case <-tick.C:
			if p.gone() {
				return
			}
		}
	}
}

// awaitGone waits, at most timeout, for every process of the group to end.
func (p *process) awaitGone(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for !p.gone() && time.Now().Before(deadline) {
		time.Sleep(pollInterval)
	}
}

// gone reports whether the main process has exited and no other process of
// its group is alive. If /proc cannot be read, only the main process counts.
func (p *process) gone() bool {
	select {
	case <-p.exited:
	default:
		return false
	}
	alive, err := groupAlive(p.pgid)
	return err == nil && !alive
}

// signal sends sig to every process in the group. An empty group is not an
// error; the unreaped main process keeps the group ID from being reused.
func (p *process) signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.pgid, sig)
}

// pipeSize is the capacity asked for each output pipe: a command writing
// fast can run this far ahead of rdev's reading, instead of the 64 KiB of a
// default pipe, and so does not stall whenever the goroutine that reads is
// late to be scheduled. It is the most an unprivileged process may ask for
// by default (/proc/sys/fs/pipe-max-size).
const pipeSize = 1 << 20

// widenBudget is the most pipe capacity rdev asks for at once, across its
// running commands: the kernel counts the pipe pages of a user without
// CAP_SYS_RESOURCE against /proc/sys/fs/pipe-user-pages-soft (64 MiB by
// default) and, past it, gives every new pipe of that user, those inside the
// commands too, a single page. Commands beyond the budget get default pipes.
const widenBudget = 16 << 20

// widened is the pipe capacity asked for by running commands.
var widened atomic.Int64

// widenPipe asks for pipeSize of capacity on the pipe of w, within
// widenBudget, and returns what it added to widened, to be taken off once
// the pipe is closed. Where the kernel refuses (a lower limit, or the user's
// pipes over their share), the pipe keeps its size, which works too.
func widenPipe(w *os.File) int64 {
	if widened.Add(pipeSize) > widenBudget {
		widened.Add(-pipeSize)
		return 0
	}
	err := errors.ErrUnsupported
	if sc, serr := w.SyscallConn(); serr == nil {
		_ = sc.Control(func(fd uintptr) { _, err = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, pipeSize) })
	}
	if err != nil {
		widened.Add(-pipeSize)
		return 0
	}
	return pipeSize
}

// copyOutput copies r to w until r ends. It writes what each read returns at
// once, so output is live. After a failed write it keeps reading and drops
// the rest, so the process never blocks on a full pipe.
func copyOutput(w io.Writer, r io.Reader) {
	buf := make([]byte, copyBufferSize)
	for {
		n, err := r.Read(buf)
		if n > 0 && w != nil {
			if _, werr := w.Write(buf[:n]); werr != nil {
				w = nil
			}
		}
		if err != nil {
			return
		}
	}
}

// waitExited blocks until the process pid has exited, without reaping it.
func waitExited(pid int) {
	const pPID = 1     // P_PID in <sys/wait.h>
	var info [128]byte // siginfo_t; its content is not needed
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info)), syscall.WEXITED|syscall.WNOWAIT, 0, 0)
		if errno != syscall.EINTR {
			// 0, or ECHILD if it was reaped already: either way it exited.
			return
		}
	}
}

// groupAlive reports whether a process of group pgid is alive, zombies (dead
// but not yet reaped by their parent) not counted, by scanning /proc.
func groupAlive(pgid int) (bool, error) {
	d, err := os.Open("/proc")
	if err != nil {
		return false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return false, err
	}
	buf := make([]byte, 512)
	for _, name := range names {
		if name[0] < '1' || name[0] > '9' {
			continue
		}
		n, err := readHead("/proc/"+name+"/stat", buf)
		if err != nil {
			continue // ended since the listing
		}
		state, pgrp, ok := parseStat(buf[:n])
		if ok && pgrp == pgid && state != 'Z' && state != 'X' {
			return true, nil
		}
	}
	return false, nil
}

// readHead reads the start of a file into buf.
func readHead(name string, buf []byte) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Read(buf)
}

// parseStat returns the state and process group of a /proc/<pid>/stat line:
// "pid (comm) state ppid pgrp …". The command name may hold spaces and
// parentheses, so the fields are counted from its last ')'.
func parseStat(b []byte) (state byte, pgrp int, ok bool) {
	f := statFields(b)
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pgrp, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], pgrp, true
}

// statFields returns the fields of a /proc/<pid>/stat line after the
// command name, from the state (field 3) on, or none if there is no name.
func statFields(b []byte) [][]byte {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil
	}
	return bytes.Fields(b[i+1:])
}

// recordGroup writes the process group pgid, with its leader's start time,
// into the groups directory, and returns the func that removes it again.
// Should rdev die, the next one finds it there (see KillOrphans). Recording
// is best effort: a command runs whether or not it can be recorded.
func (e *Executor) recordGroup(pgid int) (forget func()) {
	if e.groups == "" {
		return func() {}
	}
	start, ok := startTime(pgid)
	owner, ownerOK := self()
	if !ok || !ownerOK || os.MkdirAll(e.groups, 0o700) != nil {
		return func() {}
	}
	path := filepath.Join(e.groups, strconv.Itoa(pgid))
	record := fmt.Sprintf("%d %d %d\n", start, owner.pid, owner.start)
	if os.WriteFile(path, []byte(record), 0o600) != nil {
		return func() {}
	}
	return func() { _ = os.Remove(path) }
}

// process identity: a PID and when it started, which tells a process from a
// later one that got the same PID.
type identity struct {
	pid   int
	start uint64
}

// self is this process's identity, written into each record so that an
// rdev still running on the same directory keeps its groups.
var self = sync.OnceValues(func() (identity, bool) {
	start, ok := startTime(os.Getpid())
	return identity{os.Getpid(), start}, ok
})

// KillOrphans ends, with SIGKILL, the process groups recorded in the groups
// directory (see WithGroupsDir) that are still alive although the rdev that
// recorded them is not: those of commands that were running when it died. Their main process died with
// that rdev; what they had started did not. It returns how many groups it
// killed. A recorded group whose ID now belongs to a new process (its leader
// started at another time) is left alone: the group it stood for is gone.
func (e *Executor) KillOrphans() (int, error) {
	if e.groups == "" {
		return 0, nil
	}
	entries, err := os.ReadDir(e.groups)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("local: read %s: %w", e.groups, err)
	}
	killed := 0
	for _, ent := range entries {
		path := filepath.Join(e.groups, ent.Name())
		pgid, err := strconv.Atoi(ent.Name())
		if err != nil || pgid <= 1 {
			_ = os.Remove(path)
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var leader uint64
		var owner identity
		if n, _ := fmt.Sscan(string(b), &leader, &owner.pid, &owner.start); n == 3 {
			if now, ok := startTime(owner.pid); ok && now == owner.start {
				continue // the rdev that runs it is alive
			}
			if orphaned(pgid, leader) && syscall.Kill(-pgid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		_ = os.Remove(path)
	}
	return killed, nil
}

// orphaned reports whether process group pgid, whose leader started at
// start (in clock ticks since boot), still has live processes. A process
// with the group's ID as its PID that started at another time means the ID
// was reused, which Linux does only once the old group is empty.
func orphaned(pgid int, start uint64) bool {
	if now, ok := startTime(pgid); ok && now != start {
		return false
	}
	alive, err := groupAlive(pgid)
	return err == nil && alive
}

// startTime returns when process pid started, in clock ticks since boot
// (field 22 of /proc/<pid>/stat), and false if there is no such process.
func startTime(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	f := statFields(b)
	if len(f) < 20 {
		return 0, false
	}
	t, err := strconv.ParseUint(string(f[19]), 10, 64)
	return t, err == nil
}

// startError turns a failed start into a domain error: a program (or the
// interpreter its #! line names) that does not exist is ENOTFOUND, one that
// cannot be executed is EINVALID; a domain error is returned as it is.
func startError(err error, name, project string) error {
	var errno syscall.Errno
	var known *domain.Error
	switch {
	case errors.As(err, &known):
		return err
	case errors.Is(err, fs.ErrNotExist):
		return domain.Errorf(domain.ENOTFOUND, "program %q (or the interpreter it names) not found in project %q", domain.Clip(name), project)
	case errors.As(err, &errno) && (errno == syscall.EACCES || errno == syscall.EPERM ||
		errno == syscall.ENOEXEC || errno == syscall.EISDIR || errno == syscall.ENOTDIR ||
		errno == syscall.ELOOP || errno == syscall.E2BIG):
		return domain.Errorf(domain.EINVALID, "program %q in project %q cannot be run: %v", domain.Clip(name), project, errno)
	}
	return fmt.Errorf("local: start %q in project %q: %w", name, project, err)
}

// result describes how the reaped process ended.
func result(ps *os.ProcessState) (domain.ExecResult, error) {
	if ps == nil {
		return domain.ExecResult{}, errors.New("local: process state missing after wait")
	}
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return domain.ExecResult{ExitCode: -1, Signal: signalName(ws.Signal())}, nil
	}
	return domain.ExecResult{ExitCode: ps.ExitCode()}, nil
}

// signalNames are the Linux signals' names; syscall.Signal.String gives
// descriptions ("terminated") instead.
var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "SIGABRT", syscall.SIGALRM: "SIGALRM", syscall.SIGBUS: "SIGBUS",
	syscall.SIGCHLD: "SIGCHLD", syscall.SIGCONT: "SIGCONT", syscall.SIGFPE: "SIGFPE",
	syscall.SIGHUP: "SIGHUP", syscall.SIGILL: "SIGILL", syscall.SIGINT: "SIGINT",
	syscall.SIGIO: "SIGIO", syscall.SIGKILL: "SIGKILL", syscall.SIGPIPE: "SIGPIPE",
	syscall.SIGPROF: "SIGPROF", syscall.SIGPWR: "SIGPWR", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGSEGV: "SIGSEGV", syscall.SIGSTKFLT: "SIGSTKFLT", syscall.SIGSTOP: "SIGSTOP",
	syscall.SIGSYS: "SIGSYS", syscall.SIGTERM: "SIGTERM", syscall.SIGTRAP: "SIGTRAP",
	syscall.SIGTSTP: "SIGTSTP", syscall.SIGTTIN: "SIGTTIN", syscall.SIGTTOU: "SIGTTOU",
	syscall.SIGURG: "SIGURG", syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGVTALRM: "SIGVTALRM", syscall.SIGWINCH: "SIGWINCH", syscall.SIGXCPU: "SIGXCPU",
	syscall.SIGXFSZ: "SIGXFSZ",
}

// signalName returns a signal's name, e.g. "SIGTERM"; real-time signals are
// "SIGRTMIN+n".
func signalName(s syscall.Signal) string {
	if n, ok := signalNames[s]; ok {
		return n
	}
	const rtmin = 34 // SIGRTMIN as the C library defines it
	if s >= rtmin {
		return fmt.Sprintf("SIGRTMIN+%d", int(s)-rtmin)
	}
	return fmt.Sprintf("SIG%d", int(s))
}
