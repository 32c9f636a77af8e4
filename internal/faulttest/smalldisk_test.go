package faulttest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// smallDisk is a filesystem of a few megabytes (a tmpfs), for a data
// directory that runs out of space when a scenario wants it to. It is
// mounted in a mount namespace of its own, which a process that does
// nothing else keeps alive, so that no root is needed and nothing is left
// mounted should the test die: `unshare --user --map-root-user --mount`
// works for a plain user where unprivileged user namespaces are allowed,
// and root falls back to `unshare --mount` where they are not. Programs run
// in the namespace under enter (nsenter); the test reaches the files
// through the keeper's /proc/<pid>/root.
type smallDisk struct {
	dir    string   // where it is mounted, as the namespace sees it
	enter  []string // the command line that runs a program in the namespace
	keeper *exec.Cmd
}

// fillerName is the file that fill writes and unfill removes.
const fillerName = "filler"

// newSmallDisk mounts a tmpfs of size (as mount's size= takes it) for the
// test, unmounted when the test ends. It skips the test if no way to mount
// one is allowed here, and skips or fails it (testenv.RequireService) if
// util-linux's programs are missing.
func newSmallDisk(t *testing.T, size string) *smallDisk {
	t.Helper()
	for _, tool := range []string{"unshare", "nsenter", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.RequireService(t, "util-linux's unshare, nsenter and mount", err)
		}
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	type way struct{ unshare, nsenter []string }
	ways := []way{{[]string{"--user", "--map-root-user", "--mount"}, []string{"-U", "-m", "--preserve-credentials"}}}
	if os.Geteuid() == 0 {
		ways = append(ways, way{[]string{"--mount"}, []string{"-m"}})
	}
	var failures []string
	for _, w := range ways {
		keeper, err := mountTmpfs(dir, size, w.unshare)
		if err != nil {
			failures = append(failures, fmt.Sprintf("unshare %s: %v", strings.Join(w.unshare, " "), err))
			continue
		}
		s := &smallDisk{dir: dir, keeper: keeper,
			enter: append([]string{"nsenter", "--target", strconv.Itoa(keeper.Process.Pid)}, w.nsenter...)}
		t.Cleanup(s.unmount)
		return s
	}
	t.Skipf("SKIPPED: no small filesystem can be mounted here (neither an unprivileged user namespace nor, as root, a mount namespace is allowed), so this test did not run: %s",
		strings.Join(failures, "; "))
	return nil
}

// mountTmpfs starts the keeper of a new mount namespace, made with unshare's
// flags, in which a tmpfs of size is mounted on dir, and returns it once
// the tmpfs is mounted.
func mountTmpfs(dir, size string, flags []string) (*exec.Cmd, error) {
	args := append(slices.Clone(flags), "sh", "-c",
		`mount -t tmpfs -o size="$1" rdev-small-disk "$2" && echo mounted && exec sleep infinity`, "sh", size, dir)
	keeper := exec.Command("unshare", args...)
	var stderr bytes.Buffer
	keeper.Stderr = &stderr
	keeper.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := keeper.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := keeper.Start(); err != nil {
		return nil, err
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Scan()
		line <- sc.Text()
	}()
	select {
	case l := <-line:
		if l == "mounted" {
			return keeper, nil
		}
	case <-time.After(30 * time.Second):
		_ = keeper.Process.Kill()
	}
	err = keeper.Wait()
	return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
}

// unmount ends the keeper; the tmpfs goes with the namespace's last
// process.
func (s *smallDisk) unmount() {
	_ = s.keeper.Process.Kill()
	_ = s.keeper.Wait()
}

// path returns where the test reaches the mounted directory.
func (s *smallDisk) path() string {
	return filepath.Join("/proc", strconv.Itoa(s.keeper.Process.Pid), "root", s.dir)
}

// available returns the bytes free on the disk.
func (s *smallDisk) available() (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.path(), &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// fill writes a file of zeros until leave bytes are free (tmpfs keeps no
// holes, so they must be written).
func (s *smallDisk) fill(leave int64) (err error) {
	free, err := s.available()
	if err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(s.path(), fillerName))
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	buf := make([]byte, 1<<20)
	for n := free - leave; n > 0; n -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(n, int64(len(buf)))]); err != nil {
			return err
		}
	}
	return nil
}

// unfill frees what fill took.
func (s *smallDisk) unfill() error {
	return os.Remove(filepath.Join(s.path(), fillerName))
}
