package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// DefaultKillGrace is how long a stopped command's processes get between
// SIGTERM and SIGKILL unless WithKillGrace says otherwise.
const DefaultKillGrace = 5 * time.Second

// defaultDrain is how long, after the main process exited, the output pipes
// may stay open (held by a process it left behind) before that process group
// is stopped. Short, because nothing is waiting for it but the caller.
const defaultDrain = 500 * time.Millisecond

// defaultPath is the PATH of the base environment.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Executor is a domain.Executor that runs commands as local processes in the
// directories of Projects.
//
// A command runs argv directly (never through a shell unless argv names one),
// in the project's directory or the Workdir below it, with stdin empty
// (/dev/null), in a process group of its own. Its environment is not rdev's:
// it starts from this minimal base
//
//	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
//	HOME=<the project directory>
//	LANG=C.UTF-8
//	TERM=dumb
//
// then the variables given to WithEnv are added, then the request's Env (a
// later one wins); with WithSandbox, TMPDIR names the command's private
// temporary directory unless one of those set it. A request's file secrets
// (SecretFiles) are written to a directory of the command's own in shared
// memory (/dev/shm where there is one), readable only by the command's
// user and, with Landlock, by no other command; RDEV_SECRETS_DIR names it,
// and it is removed when Exec returns. A program name without a slash is looked up in that PATH,
// not in rdev's; one with a slash is relative to the working directory.
//
// Stopping. When Exec's context ends, the whole process group gets SIGTERM,
// and SIGKILL once the grace period (WithKillGrace) has passed and any of it
// is still alive; Exec returns when no process of the group is left. When the
// main process exits by itself, its output is read to the end; if a process
// it left behind still holds the output open after a short drain, that
// process group is stopped the same way, so a forgotten background job cannot
// hang the command. Background processes that let go of the output (a server
// started with its output redirected) are left running, as they would be in
// a Kubernetes pod. A process that moves to another process group or session
// (setsid) escapes all of this.
//
// Confinement. Without WithSandbox, processes run as rdev's user and can
// reach anything it can; the Workdir checks keep honest requests inside the
// project, they are not a security boundary. With it, each command starts
// through a launcher (ServeLauncher) that confines it with Landlock and runs
// it as another user before executing it (see Sandbox).
//
// Executor needs Linux: it watches processes through waitid(2) and /proc.
type Executor struct {
	projects *Projects
	grace    time.Duration
	drain    time.Duration
	env      map[string]string
	groups   string // where running commands' process groups are recorded, or ""
	sandbox  *Sandbox
}

var _ domain.Executor = (*Executor)(nil)

// ExecutorOption configures an Executor.
type ExecutorOption func(*Executor)

// WithKillGrace sets how long a command's processes get between SIGTERM and
// SIGKILL when it is stopped (DefaultKillGrace by default; 0 or less sends
// SIGKILL right after SIGTERM).
func WithKillGrace(d time.Duration) ExecutorOption {
	return func(e *Executor) { e.grace = max(d, 0) }
}

// WithGroupsDir records the process group of each running command in a
// file of dir (made if missing), removed when the command ends, so that
// KillOrphans, run by the next rdev on the same directory, can end the
// groups of commands that were running when an rdev died.
func WithGroupsDir(dir string) ExecutorOption {
	return func(e *Executor) { e.groups = dir }
}

// WithEnv adds variables to the base environment of every command; a
// request's own Env still wins over them. Exec fails with an internal error
// if a name is empty or holds '=' or a NUL byte, or a value holds a NUL byte.
func WithEnv(env map[string]string) ExecutorOption {
	return func(e *Executor) { maps.Copy(e.env, env) }
}

// NewExecutor returns an Executor that runs commands in the directories of
// projects.
func NewExecutor(projects *Projects, opts ...ExecutorOption) *Executor {
	e := &Executor{
		projects: projects,
		grace:    DefaultKillGrace,
		drain:    defaultDrain,
		env:      map[string]string{},
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Exec runs req.Argv in the project's directory and writes its output to
// stdout and stderr as it arrives (each from its own goroutine; nil discards).
// A write error does not stop the process: the rest of that stream is
// discarded. Exec returns how the process ended; when ctx ended first, that is
// the signal that stopped it and the error is nil.
//
// It returns EINVALID for a request it cannot run: no project, an empty argv,
// NUL bytes in argv or Env, an invalid variable name, a Workdir that is
// absolute, leaves the project directory (by ".." or a symbolic link), does
// not exist or is not a directory, and a program that is not executable.
// It returns ENOTFOUND for a project or program that does not exist, and
// ctx's error, without running anything, when ctx is already done.
func (e *Executor) Exec(ctx context.Context, req domain.ExecRequest, stdout, stderr io.Writer) (domain.ExecResult, error) {
	cmd, dir, err := e.command(req)
	if err != nil {
		return domain.ExecResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return domain.ExecResult{}, err
	}
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	uid, gid := -1, -1
	if e.sandbox.switches() {
		uid, gid = e.sandbox.UID, e.sandbox.GID
	}
	secrets, err := writeSecretFiles(req.SecretFiles, uid, gid)
	if err != nil {
		return domain.ExecResult{}, err
	}
	defer removeSecretFiles(secrets)
	if secrets != "" {
		cmd.Env = append(cmd.Env, domain.SecretsDirVar+"="+secrets)
	}
	l, err := e.confine(cmd, dir, secrets, req.Network)
	if err != nil {
		return domain.ExecResult{}, err
	}
	defer l.done()
	return e.run(ctx, cmd, l, req.Project.ID, stdout, stderr)
}

// command checks req and builds the process to start, with its program
// resolved to an absolute path; it returns the project directory too.
func (e *Executor) command(req domain.ExecRequest) (*exec.Cmd, string, error) {
	if req.Project == nil {
		return nil, "", domain.Errorf(domain.EINVALID, "exec: no project given")
	}
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, "", domain.Errorf(domain.EINVALID, "argv: the program name must not be empty")
	}
	for i, a := range req.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, "", domain.Errorf(domain.EINVALID, "argv: element %d holds a NUL byte", i)
		}
	}
	id := req.Project.ID
	dir, err := e.projects.Dir(id)
	if err != nil {
		return nil, "", err
	}
	wd, err := workdir(dir, req.Workdir)
	if err != nil {
		return nil, "", err
	}
	env, err := e.environ(dir, req.Env)
	if err != nil {
		return nil, "", err
	}
	path, err := lookPath(req.Argv[0], wd, env["PATH"], id)
	if err != nil {
		return nil, "", err
	}
	envv := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		envv = append(envv, k+"="+env[k])
	}
	return &exec.Cmd{Path: path, Args: slices.Clone(req.Argv), Env: envv, Dir: wd}, dir, nil
}

// workdir returns the absolute, symlink-free directory that rel names inside
// the project directory dir. Both lexical escapes ("..") and symbolic links
// that lead out are refused; the check and the start of the process are not
// atomic, which is acceptable because the process could leave the directory
// anyway (see Executor).
func workdir(dir, rel string) (string, error) {
	if rel == "" {
		return dir, nil
	}
	q := domain.Clip(rel)
	switch {
	case strings.IndexByte(rel, 0) >= 0:
		return "", domain.Errorf(domain.EINVALID, "workdir: holds a NUL byte")
	case filepath.IsAbs(rel):
		return "", domain.Errorf(domain.EINVALID, "workdir: %q must be relative to the project directory", q)
	case !filepath.IsLocal(rel):
		return "", domain.Errorf(domain.EINVALID, "workdir: %q leads out of the project directory", q)
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("local: resolve project directory: %w", err)
	}
	full, err := filepath.EvalSymlinks(filepath.Join(root, rel))
	if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
		return "", domain.Errorf(domain.EINVALID, "workdir: %q does not exist in the project", q)
	} else if err != nil {
		return "", domain.Errorf(domain.EINVALID, "workdir: %q cannot be used: %s", q, cause(err))
	}
	if r, err := filepath.Rel(root, full); err != nil || !filepath.IsLocal(r) {
		return "", domain.Errorf(domain.EINVALID, "workdir: %q leads out of the project directory", q)
	}
	info, err := os.Stat(full)
	if err != nil {
		return "", domain.Errorf(domain.EINVALID, "workdir: %q cannot be used: %s", q, cause(err))
	} else if !info.IsDir() {
		return "", domain.Errorf(domain.EINVALID, "workdir: %q is not a directory", q)
	}
	return full, nil
}

// environ returns the environment of a command in the project directory dir:
// the base, then e.env, then env.
func (e *Executor) environ(dir string, env map[string]string) (map[string]string, error) {
	out := map[string]string{
		"PATH": defaultPath,
		"HOME": dir,
		"LANG": "C.UTF-8",
		"TERM": "dumb",
	}
	for k, v := range e.env {
		if !validEnv(k, v) {
			return nil, fmt.Errorf("local: base environment: invalid variable %q", domain.Clip(k))
		}
		out[k] = v
	}
	for k, v := range env {
		if !validEnv(k, v) {
			return nil, domain.Errorf(domain.EINVALID, "env: %q is not a valid variable name, or its value holds a NUL byte", domain.Clip(k))
		}
		out[k] = v
	}
	return out, nil
}

// validEnv reports whether name=value can be passed to a process.
func validEnv(name, value string) bool {
	return name != "" && !strings.ContainsAny(name, "=\x00") && strings.IndexByte(value, 0) < 0
}

// lookPath resolves a program name the way the command's own shell would:
// with a slash, relative to the working directory wd; without one, through
// the command's PATH. Relative PATH entries are skipped, like os/exec does,
// so that the working directory cannot shadow a program.
func lookPath(name, wd, path, project string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(wd, p)
		}
		return p, executable(p, name, project)
	}
	var notExec error
	for _, d := range filepath.SplitList(path) {
		if !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		err := executable(p, name, project)
		if err == nil {
			return p, nil
		} else if domain.ErrorCode(err) != domain.ENOTFOUND && notExec == nil {
			notExec = err
		}
	}
	if notExec != nil {
		return "", notExec
	}
	return "", domain.Errorf(domain.ENOTFOUND, "program %q not found in project %q (PATH=%s)", domain.Clip(name), project, domain.Clip(path))
}

// executable returns nil if p is a file with an execute permission bit set,
// ENOTFOUND if there is none, and EINVALID if it cannot be run.
func executable(p, name, project string) error {
	info, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist) || isNotDir(err):
		return domain.Errorf(domain.ENOTFOUND, "program %q not found in project %q", domain.Clip(name), project)
	case err != nil:
		return domain.Errorf(domain.EINVALID, "program %q in project %q cannot be run: %s", domain.Clip(name), project, cause(err))
	case info.IsDir():
		return domain.Errorf(domain.EINVALID, "program %q in project %q is a directory", domain.Clip(name), project)
	case info.Mode()&0o111 == 0:
		return domain.Errorf(domain.EINVALID, "program %q in project %q is not executable", domain.Clip(name), project)
	}
	return nil
}

// cause returns the reason of a file-system error without the path in it,
// which is rdev's and not the client's business.
func cause(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return "unexpected error"
}
