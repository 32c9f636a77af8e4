package main

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/local"
)

// sandboxConfig says how the local executor confines commands.
type sandboxConfig struct {
	Mode     string
	RunAs    string
	ReadOnly []string
	// Network is the network policy of projects an admin set none for.
	Network string
}

// sandboxOffWarning is logged and printed in the banner when commands run
// unconfined.
const sandboxOffWarning = "the local sandbox is off (RDEV_LOCAL_SANDBOX=off): commands can read and change rdev's data directory, other projects and everything else rdev's user can reach; do not let others run commands"

func (c *sandboxConfig) register(f *envFlags) {
	f.String(&c.Mode, "local-sandbox", "RDEV_LOCAL_SANDBOX", "auto", "confine local commands with Landlock to their project directory and the system directories: auto or on (refuse to start without Landlock), off (commands can read and change rdev's data)")
	f.String(&c.RunAs, "local-run-as", "RDEV_LOCAL_RUN_AS", "nobody", "user (name, uid or uid:gid) local commands run as when rdev runs as root; never root")
	f.String(&c.Network, "local-network", "RDEV_LOCAL_NETWORK", "any", "network local commands reach unless an admin set their project's (setProjectNetwork): any (rdev, its database and every host rdev reaches), loopback (their own 127.0.0.1 only), none; pick loopback or none when others run commands")
	f.List(&c.ReadOnly, "local-sandbox-read", "RDEV_LOCAL_SANDBOX_READ", "further paths sandboxed local commands may read and execute, beside "+strings.Join(local.SystemReadOnly, ","))
}

// resolve returns the sandbox for the local executor with the project root
// workspace and rdev's data directory dataDir, and whether it is off. It
// refuses without Landlock unless told off, and a data directory that the
// sandbox would let commands see.
func (c *sandboxConfig) resolve(workspace, dataDir string) (local.Sandbox, bool, error) {
	s := local.Sandbox{UID: -1, GID: -1}
	for _, p := range c.ReadOnly {
		// Relative to rdev's directory, not the command's.
		abs, err := filepath.Abs(p)
		if err != nil {
			return s, false, fmt.Errorf("RDEV_LOCAL_SANDBOX_READ: %w", err)
		}
		s.ReadOnly = append(s.ReadOnly, abs)
	}
	if os.Geteuid() == 0 {
		uid, gid, err := lookupRunAs(c.RunAs)
		if err != nil {
			return s, false, err
		}
		// Root of a user namespace that maps only itself (unshare
		// --map-root-user) is an unprivileged user outside it, and
		// cannot become another one: commands keep its user.
		if idMapped("/proc/self/uid_map", uid) && idMapped("/proc/self/gid_map", gid) {
			s.UID, s.GID = uid, gid
		}
	}
	switch c.Mode {
	case "off":
		return s, true, nil
	case "auto", "on", "":
	default:
		return s, false, fmt.Errorf("RDEV_LOCAL_SANDBOX: %q is not auto, on or off", c.Mode)
	}
	if local.LandlockABI() == 0 {
		return s, false, errors.New("RDEV_LOCAL_SANDBOX: this kernel offers no Landlock (Linux 5.13 or later with Landlock enabled, lsm=landlock), so local commands cannot be kept away from rdev's data; " +
			"use the Kubernetes executor, or set RDEV_LOCAL_SANDBOX=off (--local-sandbox=off) to run them unconfined, able to read and change rdev's data")
	}
	s.Landlock = true
	data, err := filepath.Abs(dataDir)
	if err != nil {
		return s, false, err
	}
	for _, p := range append([]string{workspace}, append(local.SystemReadOnly, s.ReadOnly...)...) {
		if abs, err := filepath.Abs(p); err == nil && within(data, abs) {
			return s, false, fmt.Errorf("RDEV_DATA_DIR %s is inside %s, which sandboxed commands can see: move it out", data, abs)
		}
	}
	return s, false, nil
}

// within reports whether path is dir or lies below it.
func within(path, dir string) bool {
	r, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(r)
}

// lookupRunAs resolves RDEV_LOCAL_RUN_AS: a user name (its primary group),
// a uid (the same number as gid) or uid:gid. Root is refused; "nobody"
// falls back to 65534 where no such user is listed.
func lookupRunAs(v string) (uid, gid int, err error) {
	u, g, pair := strings.Cut(v, ":")
	uid, uerr := strconv.Atoi(u)
	gid, gerr := strconv.Atoi(g)
	switch {
	case pair && (uerr != nil || gerr != nil):
		return 0, 0, fmt.Errorf("RDEV_LOCAL_RUN_AS: %q is not uid:gid", v)
	case !pair && uerr == nil:
		gid = uid
	case !pair:
		usr, err := user.Lookup(v)
		if err != nil && v == "nobody" {
			uid, gid = 65534, 65534
			break
		} else if err != nil {
			return 0, 0, fmt.Errorf("RDEV_LOCAL_RUN_AS: %w", err)
		}
		uid, uerr = strconv.Atoi(usr.Uid)
		gid, gerr = strconv.Atoi(usr.Gid)
		if uerr != nil || gerr != nil {
			return 0, 0, fmt.Errorf("RDEV_LOCAL_RUN_AS: user %q has no numeric uid and gid", v)
		}
	}
	if uid <= 0 || gid < 0 {
		return 0, 0, fmt.Errorf("RDEV_LOCAL_RUN_AS: %q: commands never run as root", v)
	}
	return uid, gid, nil
}

// network resolves RDEV_LOCAL_NETWORK for the executor kind ("local" or
// "kube"): the Kubernetes executor holds no policy but any.
func (c *sandboxConfig) network(kind string) (domain.ProjectNetwork, error) {
	n, err := domain.ParseProjectNetwork(c.Network)
	if c.Network == "" {
		n, err = domain.NetworkAny, nil
	}
	switch {
	case err != nil:
		return "", fmt.Errorf("RDEV_LOCAL_NETWORK: %q is not any, loopback or none", c.Network)
	case kind != "local" && n != domain.NetworkAny:
		return "", fmt.Errorf("RDEV_LOCAL_NETWORK=%s: the Kubernetes executor holds no network policy of its own; restrict the project pods with NetworkPolicies (deploy/) and unset it", c.Network)
	}
	return n, nil
}

// sandboxWhere describes the confinement of local commands for the log
// and the banner.
func sandboxWhere(s local.Sandbox, network domain.ProjectNetwork) string {
	var parts []string
	if s.Landlock {
		parts = append(parts, "sandboxed with Landlock")
	}
	if s.UID >= 0 {
		parts = append(parts, fmt.Sprintf("as uid %d", s.UID))
	}
	if network != domain.NetworkAny {
		parts = append(parts, "network "+strings.ToLower(string(network))+" unless set per project")
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// idMapped reports whether id is mapped in the user namespace whose map
// (uid_map or gid_map) is the file name; true if that cannot be read.
func idMapped(name string, id int) bool {
	b, err := os.ReadFile(name)
	if err != nil {
		return true
	}
	for line := range strings.Lines(string(b)) {
		var inside, outside, count int
		if n, _ := fmt.Sscan(line, &inside, &outside, &count); n == 3 && id >= inside && id < inside+count {
			return true
		}
	}
	return false
}
