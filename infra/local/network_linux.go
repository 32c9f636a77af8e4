package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/rdev-hq/rdev/domain"
)

// netnsAttr returns how the launcher of a command with network policy n
// is started: in a new network namespace. A launcher that switches to
// the command's user (switches; rdev is privileged) makes the namespace's
// loopback up itself. Otherwise rdev, unprivileged, cannot make a network
// namespace by itself: the launcher starts in a user namespace of its
// own too, mapping only rdev's user and group to themselves, holding
// CAP_NET_ADMIN there only to make the loopback up (see dropCaps).
func netnsAttr(n domain.ProjectNetwork, switches bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if switches {
		return a
	}
	uid, gid := os.Geteuid(), os.Getegid()
	a.Cloneflags |= syscall.CLONE_NEWUSER
	a.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
	a.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	if n == domain.NetworkLoopback {
		a.AmbientCaps = []uintptr{unix.CAP_NET_ADMIN}
	}
	return a
}

// netnsID returns the inode of the network namespace this process is in.
func netnsID() (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return 0, fmt.Errorf("network namespace: %w", err)
	}
	return st.Ino, nil
}

// netnsRefused explains the error of starting a launcher in a new network
// namespace for policy n, for project (or "" for CheckNetwork): the kernel
// refusing the namespace (no user namespaces for unprivileged users, a
// limit reached) is EUNAVAILABLE; other errors are returned as they are.
func netnsRefused(err error, project string, n domain.ProjectNetwork) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) || (errno != syscall.EPERM && errno != syscall.EINVAL &&
		errno != syscall.ENOSPC && errno != syscall.EUSERS && errno != syscall.EACCES) {
		return err
	}
	msg := fmt.Sprintf("the kernel refuses commands a network namespace of their own (%v), which network policy %s needs", errno, n)
	if project == "" {
		return domain.Errorf(domain.EUNAVAILABLE, "%s", msg)
	}
	return domain.Errorf(domain.EUNAVAILABLE, "project %s: %s: the command was not run", project, msg)
}

// CheckNetwork makes sure that commands can be given network policy n: it
// starts a launcher that enters a network namespace as it would for a
// command, and ends there. It returns EUNAVAILABLE, saying why, if the
// kernel refuses.
func (e *Executor) CheckNetwork(n domain.ProjectNetwork) error {
	if !isolated(n) {
		return nil
	}
	ns, err := netnsID()
	if err != nil {
		return fmt.Errorf("local: %w", err)
	}
	// No Program: the launcher ends once it has entered the namespace.
	spec := launchSpec{Network: string(n), HostNet: ns, UID: -1, GID: -1}
	if e.sandbox.switches() {
		spec.UID, spec.GID = e.sandbox.UID, e.sandbox.GID
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("local: launch: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("local: launch report pipe: %w", err)
	}
	l := &launch{report: r, w: w, network: n}
	defer l.done()
	cmd := &exec.Cmd{
		Path: "/proc/self/exe", Args: []string{"rdev-network-check"},
		Env:         []string{launchEnv + "=" + string(b)},
		ExtraFiles:  []*os.File{w},
		SysProcAttr: netnsAttr(n, e.sandbox.switches()),
	}
	if err := cmd.Start(); err != nil {
		return netnsRefused(err, "", n)
	}
	if err := l.started(cmd); err != nil {
		return domain.Errorf(domain.EUNAVAILABLE, "commands cannot be given network policy %s: %v", n, err)
	}
	if err := cmd.Wait(); err != nil {
		return domain.Errorf(domain.EUNAVAILABLE, "commands cannot be given network policy %s: the check ended with %v", n, err)
	}
	return nil
}

// enterNetwork is the launcher's part of a network policy: it makes sure
// that the launcher is not in rdev's network namespace (host), makes the
// loopback up for LOOPBACK, and gives up the capabilities a user namespace
// gave it for that.
func (s launchSpec) enterNetwork() error {
	ns, err := netnsID()
	if err != nil {
		return err
	}
	if ns == s.HostNet {
		return errors.New("network: the command would share rdev's network namespace")
	}
	if domain.ProjectNetwork(s.Network) == domain.NetworkLoopback {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("network: make the loopback interface up: %w", err)
		}
	}
	if s.UID >= 0 {
		return nil // setuid drops every capability
	}
	return dropCaps()
}

// loopbackUp makes the interface lo of this network namespace up, which
// gives it 127.0.0.1 and ::1.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// dropCaps clears this thread's capabilities, ambient ones included, so
// that the command starts with none.
func dropCaps() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	if err := unix.Capset(&hdr, &none[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	return nil
}
