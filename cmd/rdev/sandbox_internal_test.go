package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/infra/local"
)

func TestLookupRunAs(t *testing.T) {
	for _, tt := range []struct {
		in       string
		uid, gid int
		err      string
	}{
		{in: "1000", uid: 1000, gid: 1000},
		{in: "1000:2000", uid: 1000, gid: 2000},
		{in: "nobody", uid: 65534, gid: 65534},
		{in: "0", err: "never run as root"},
		{in: "root", err: "never run as root"},
		{in: "0:0", err: "never run as root"},
		{in: "1000:x", err: "is not uid:gid"},
		{in: "no-such-user-here", err: "RDEV_LOCAL_RUN_AS"},
	} {
		uid, gid, err := lookupRunAs(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want one saying %q", tt.in, err, tt.err)
		case tt.err == "" && (err != nil || uid != tt.uid || gid != tt.gid):
			t.Errorf("%q: %d:%d, %v; want %d:%d", tt.in, uid, gid, err, tt.uid, tt.gid)
		}
	}
}

func TestSandboxConfig_Resolve(t *testing.T) {
	dir := t.TempDir()
	workspace := filepath.Join(dir, "workspace")
	t.Run("ErrMode", func(t *testing.T) {
		c := sandboxConfig{Mode: "maybe", RunAs: "nobody"}
		if _, _, err := c.resolve(workspace, filepath.Join(dir, "data")); err == nil || !strings.Contains(err.Error(), "not auto, on or off") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("Off", func(t *testing.T) {
		c := sandboxConfig{Mode: "off", RunAs: "nobody"}
		s, off, err := c.resolve(workspace, filepath.Join(dir, "data"))
		if err != nil || !off || s.Landlock {
			t.Errorf("%+v, off %v, %v", s, off, err)
		}
		if os.Geteuid() == 0 && s.UID != 65534 {
			t.Errorf("as root, off still runs commands as nobody; got uid %d", s.UID)
		}
	})
	if local.LandlockABI() == 0 {
		t.Skip("SKIPPED: the kernel offers no Landlock; the rest needs it")
	}
	c := sandboxConfig{Mode: "auto", RunAs: "nobody", ReadOnly: []string{filepath.Join(dir, "tools")}}
	if s, off, err := c.resolve(workspace, filepath.Join(dir, "data")); err != nil || off || !s.Landlock {
		t.Errorf("auto: %+v, off %v, %v", s, off, err)
	}
	for _, data := range []string{filepath.Join(workspace, "data"), workspace, "/etc/rdev", filepath.Join(dir, "tools", "data")} {
		if _, _, err := c.resolve(workspace, data); err == nil || !strings.Contains(err.Error(), "move it out") {
			t.Errorf("data directory %s: error %v, want a refusal", data, err)
		}
	}
}

func TestIDMapped(t *testing.T) {
	name := filepath.Join(t.TempDir(), "uid_map")
	if err := os.WriteFile(name, []byte("         0       1000          1\n      1000     100000      65536\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[int]bool{0: true, 1: false, 999: false, 1000: true, 66535: true, 66536: false} {
		if got := idMapped(name, id); got != want {
			t.Errorf("idMapped(%d) = %v, want %v", id, got, want)
		}
	}
}
