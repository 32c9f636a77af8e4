package local

import "github.com/rdev-hq/rdev/domain"

// Sandbox says how each command of an Executor is confined (see
// WithSandbox).
type Sandbox struct {
	// Landlock confines the command's file-system view with Landlock: its
	// project directory and a private temporary directory read-write, the
	// system directories (SystemReadOnly) and ReadOnly read-only, nothing
	// else.
	Landlock bool
	// ReadOnly lists further paths the command may read and execute
	// (toolchains installed outside the system directories).
	ReadOnly []string
	// UID and GID, when UID is not negative, are the user and group the
	// command runs as, with no supplementary groups. Only a privileged rdev
	// (root) can switch; the project directory is given to that user
	// before its first command.
	UID, GID int
}

// SystemReadOnly are the directories a sandboxed command may read and
// execute from; those missing on a machine are skipped.
var SystemReadOnly = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/proc", "/sys"}

// sandboxDevices are the device files a sandboxed command may read and
// write.
var sandboxDevices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"}

// switches reports whether s changes the command's user.
func (s *Sandbox) switches() bool { return s != nil && s.UID >= 0 }

// WithSandbox confines every command as s says. Without it, commands run
// as rdev's user and see all it sees.
func WithSandbox(s Sandbox) ExecutorOption {
	return func(e *Executor) { e.sandbox = &s }
}

// isolated reports whether commands with network policy n run in a
// network namespace of their own.
func isolated(n domain.ProjectNetwork) bool {
	return n != "" && n != domain.NetworkAny
}
