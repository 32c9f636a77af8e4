package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// rdev keys works on the database rdev serve uses, found the same way, says
// which, and never makes a new one unless asked: a key written to a stray
// database would fail with "invalid API key" without saying why.
func TestE2E_KeysUseTheServersDatabase(t *testing.T) {
	in := newInstance(t)
	db := filepath.Join(in.data, "rdev.db")

	_, errs, code := in.cli("keys", "create", "--name", "admin", "--admin")
	if code != 1 || !strings.Contains(errs, "no database at "+db) || !strings.Contains(errs, "pass --init") {
		t.Errorf("before any database: exit %d, stderr %q; want 1, naming %s and --init", code, errs, db)
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("keys create made %s without --init (%v)", db, err)
	}
	if _, errs, code := in.cli("keys", "list"); code != 1 || !strings.Contains(errs, "no database at "+db) {
		t.Errorf("keys list: exit %d, stderr %q", code, errs)
	}

	out, errs, code := in.cli("keys", "create", "--init", "--name", "admin", "--admin")
	if code != 0 || !strings.Contains(out, "in sqlite:"+db+".") || !strings.Contains(out, "export RDEV_KEY=rdev_") {
		t.Fatalf("keys create --init: exit %d, stdout %q, stderr %q; want the database named", code, out, errs)
	}

	// The server finds the key, and says where the database is.
	s := in.serve()
	token, _ := in.createKey("--name", "second", "--admin")
	if r := s.query(token, `{ viewer { name } }`, nil); len(r.Errors) > 0 {
		t.Errorf("the key keys create made does not work: %+v", r.Errors)
	}

	// Run from another directory with the default data directory: that
	// directory's ./data, which is not there, named in full.
	cwd, _ := os.Getwd()
	stray := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_DATA_DIR=")}
	_, errs, code = stray.cli("keys", "create", "--name", "x", "--admin")
	if want := "no database at " + filepath.Join(cwd, "data", "rdev.db"); code != 1 || !strings.Contains(errs, want) {
		t.Errorf("from another directory: exit %d, stderr %q; want %q", code, errs, want)
	}
	if _, err := os.Stat(filepath.Join(cwd, "data")); !os.IsNotExist(err) {
		t.Errorf("keys create made %s", filepath.Join(cwd, "data"))
	}
}
