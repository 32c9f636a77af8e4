package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsyscall "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"

	"github.com/rdev-hq/rdev/domain"
)

// launchEnv carries a launch's spec to the launcher; the launcher removes
// it from the environment before the command starts.
const launchEnv = "_RDEV_SANDBOX_LAUNCH"

// launchReportFD is the launcher's descriptor of the pipe on which it
// reports a failure to start the command. It is closed on exec, so the
// Executor reads end-of-file once the command runs.
const launchReportFD = 3

// LandlockABI returns the Landlock ABI version the kernel offers, 0 if it
// has none (or has it disabled).
func LandlockABI() int {
	v, err := llsyscall.LandlockGetABIVersion()
	if err != nil {
		return 0
	}
	return v
}

// launchSpec is what the launcher does before it executes the command.
type launchSpec struct {
	Program  string   `json:"program"`
	Landlock bool     `json:"landlock,omitempty"`
	ReadOnly []string `json:"ro,omitempty"`
	Write    []string `json:"rw,omitempty"`
	UID      int      `json:"uid"`
	GID      int      `json:"gid"`
	// Network is the command's network policy unless it is ANY; the
	// launcher then runs in a network namespace of its own, and HostNet
	// is the inode of rdev's, which it must not be in.
	Network string `json:"net,omitempty"`
	HostNet uint64 `json:"hostnet,omitempty"`
}

// launch is a command started through the launcher.
type launch struct {
	report *os.File // read end of the launcher's report pipe
	w      *os.File // its write end, the launcher's
	tmp    string   // the command's private temporary directory
	// network is the command's policy when it has a network namespace of
	// its own, "" otherwise.
	network domain.ProjectNetwork
}

// confine turns cmd, which runs in the project directory dir and reads its
// file secrets in secrets ("" for none), into a start
// of the launcher (this very binary, which ServeLauncher turns into it)
// that confines itself as e.sandbox and the network policy network say
// and then executes cmd's program. It returns nil, with cmd untouched,
// when there is neither a sandbox nor a network to keep the command from.
// The command gets a private temporary directory, exported as TMPDIR
// unless the request set that; launch.done removes it.
func (e *Executor) confine(cmd *exec.Cmd, dir, secrets string, network domain.ProjectNetwork) (*launch, error) {
	s := e.sandbox
	if s == nil && !isolated(network) {
		return nil, nil
	} else if s == nil {
		s = &Sandbox{UID: -1, GID: -1}
	}
	spec := launchSpec{Program: cmd.Path, Landlock: s.Landlock, UID: -1, GID: -1}
	if isolated(network) {
		ns, err := netnsID()
		if err != nil {
			return nil, fmt.Errorf("local: %w", err)
		}
		spec.Network, spec.HostNet = string(network), ns
		cmd.SysProcAttr = netnsAttr(network, s.switches())
	}
	if s.switches() {
		spec.UID, spec.GID = s.UID, s.GID
		if err := own(dir, s.UID, s.GID); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp("", "rdev-cmd-")
	if err != nil {
		return nil, fmt.Errorf("local: command temporary directory: %w", err)
	}
	l := &launch{tmp: tmp}
	if isolated(network) {
		l.network = network
	}
	if s.switches() {
		if err := os.Chown(tmp, s.UID, s.GID); err != nil {
			l.done()
			return nil, fmt.Errorf("local: command temporary directory: %w", err)
		}
	}
	if s.Landlock {
		spec.Write = []string{dir, tmp}
		spec.ReadOnly = slices.Concat(SystemReadOnly, s.ReadOnly)
		if secrets != "" {
			spec.ReadOnly = append(spec.ReadOnly, secrets)
		}
	}
	b, err := json.Marshal(spec)
	if err != nil {
		l.done()
		return nil, fmt.Errorf("local: launch: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		l.done()
		return nil, fmt.Errorf("local: launch report pipe: %w", err)
	}
	l.report, l.w = r, w
	if !slices.ContainsFunc(cmd.Env, func(v string) bool { return strings.HasPrefix(v, "TMPDIR=") }) {
		cmd.Env = append(cmd.Env, "TMPDIR="+tmp)
	}
	cmd.Env = append(cmd.Env, launchEnv+"="+string(b))
	cmd.ExtraFiles = []*os.File{w}
	// /proc/self/exe is this binary even if the file was replaced since.
	cmd.Path = "/proc/self/exe"
	return l, nil
}

// started waits for the launcher to execute the command and returns why
// it could not, having reaped it then. It is called once cmd has started.
func (l *launch) started(cmd *exec.Cmd) error {
	l.w.Close()
	b, _ := io.ReadAll(io.LimitReader(l.report, 4<<10))
	l.report.Close()
	if len(b) == 0 {
		return nil // closed on exec
	}
	_ = cmd.Wait()
	msg := string(b)
	if n, err := strconv.Atoi(strings.TrimPrefix(msg, "errno ")); err == nil && strings.HasPrefix(msg, "errno ") {
		return syscall.Errno(n)
	}
	return fmt.Errorf("sandbox: %s", msg)
}

// done removes what the launch made.
func (l *launch) done() {
	if l == nil {
		return
	}
	if l.report != nil {
		l.report.Close()
		l.w.Close()
	}
	_ = os.RemoveAll(l.tmp)
}

// own gives the project directory dir, and everything in it, to uid and
// gid, unless dir is theirs already: commands that run as that user must
// be able to change their project.
func own(dir string, uid, gid int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("local: project directory: %w", err)
	}
	if int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	// Through an os.Root: a link a command left in the project cannot
	// lead the walk out of it.
	root, err := os.OpenRoot(dir)
	if err == nil {
		err = fs.WalkDir(root.FS(), ".", func(p string, _ fs.DirEntry, err error) error {
			if err == nil {
				err = root.Lchown(p, uid, gid)
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile, by a command already running
			}
			return err
		})
		root.Close()
	}
	if err != nil {
		return fmt.Errorf("local: give the project directory to uid %d: %w", uid, err)
	}
	return nil
}

// ServeLauncher makes this process the launcher of a sandboxed command if
// an Executor started it as one, and then never returns: it confines
// itself (Landlock, no new privileges, another user) and executes the
// command in its place, so the confinement, which cannot be undone, is
// inherited by the command and all it starts. Otherwise it returns at
// once. The program's main, and the TestMain of tests that run sandboxed
// commands, call it first thing.
func ServeLauncher() {
	raw, ok := os.LookupEnv(launchEnv)
	if !ok {
		return
	}
	_ = os.Unsetenv(launchEnv)
	// The attributes set below (no new privileges, the parent-death
	// signal) are those of a thread: the one that executes the command.
	runtime.LockOSThread()
	parent := os.Getppid()
	unix.CloseOnExec(launchReportFD)
	report := os.NewFile(launchReportFD, "report")
	var spec launchSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fail(report, fmt.Errorf("bad launch spec: %w", err))
	}
	if err := spec.confine(parent); err != nil {
		fail(report, err)
	}
	if spec.Program == "" {
		os.Exit(0) // a check (CheckNetwork): confined, nothing to run
	}
	err := syscall.Exec(spec.Program, os.Args, os.Environ()) //nolint:gosec // running the command is the point; the Executor checked it
	var errno syscall.Errno
	if errors.As(err, &errno) {
		_, _ = fmt.Fprintf(report, "errno %d", int(errno))
		os.Exit(127)
	}
	fail(report, err)
}

// confine applies the spec to this process.
func (s launchSpec) confine(parent int) error {
	if s.Network != "" {
		// First: making the loopback up needs the privileges dropped below.
		if err := s.enterNetwork(); err != nil {
			return err
		}
	}
	if s.Landlock {
		// The IPC scopes are handled: no signals to, and no abstract
		// sockets of, processes outside the sandbox. TCP is left as it
		// is, but for NONE: no bind or connect at all, a second wall
		// behind the empty network namespace.
		cfg := landlock.V7.BestEffort()
		if domain.ProjectNetwork(s.Network) != domain.NetworkNone {
			cfg.HandledAccessNet = 0
		}
		err := cfg.Restrict(
			landlock.RODirs(s.ReadOnly...).IgnoreIfMissing(),
			landlock.RWDirs(s.Write...),
			landlock.RWFiles(sandboxDevices...).IgnoreIfMissing(),
		)
		if err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if s.UID < 0 {
		return nil
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(s.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", s.GID, err)
	}
	if err := syscall.Setuid(s.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", s.UID, err)
	}
	// A change of user clears the parent-death signal: set it again, and
	// stop if rdev died in between.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	if os.Getppid() != parent {
		return errors.New("rdev ended")
	}
	return nil
}

// fail reports err to the Executor and ends the launcher.
func fail(report *os.File, err error) {
	_, _ = io.WriteString(report, err.Error())
	os.Exit(126)
}
