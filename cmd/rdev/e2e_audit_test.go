package main_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/infra/sqlite"
)

// TestE2E_AuditVerify records key changes from the CLI and mutations through
// the server, checks the chain with `rdev audit verify`, then edits an entry
// in the database file and expects verify to name it and exit non-zero.
func TestE2E_AuditVerify(t *testing.T) {
	in := newInstance(t)
	token, adminID := in.createKey("--name", "admin", "--admin")
	_, otherID := in.createKey("--name", "other", "--scopes", "projects:read")
	if out, errs, code := in.cli("keys", "rotate", otherID); code != 0 || !strings.Contains(out, "rdev_") {
		t.Fatalf("keys rotate: exit %d: %s %s", code, out, errs)
	}
	if _, errs, code := in.cli("keys", "revoke", otherID); code != 0 {
		t.Fatalf("keys revoke: exit %d: %s", code, errs)
	}

	s := in.serve()
	r := s.query(token, `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
		map[string]any{"in": map[string]any{"projectId": "demo", "argv": []string{"true"}}})
	if len(r.Errors) > 0 {
		t.Fatalf("executeCommand: %+v", r.Errors)
	}
	r = s.query(token, `{ auditLog(first: 100) { nodes { seq actor action target outcome } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("auditLog: %+v", r.Errors)
	}
	nodes := r.Data["auditLog"].(map[string]any)["nodes"].([]any)
	var got []string
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i].(map[string]any)
		got = append(got, n["actor"].(string)+" "+n["action"].(string)+" "+n["outcome"].(string))
	}
	want := []string{"cli key.create SUCCESS", "cli key.create SUCCESS", "cli key.rotate SUCCESS", "cli key.revoke SUCCESS", adminID + " command.execute SUCCESS"}
	if len(got) < len(want) || strings.Join(got[:len(want)], "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit log:\n%s\nwant it to start with:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	s.stop()

	out, errs, code := in.cli("audit", "verify")
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify on an intact log: exit %d: %s %s", code, out, errs)
	}

	// Someone with write access to the file lifts the trigger and edits
	// entry 3.
	db, err := sqlite.Open(t.Context(), filepath.Join(in.data, "rdev.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TRIGGER audit_log_no_update", "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"} {
		if _, err := db.DB().ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = db.Close()
	out, errs, code = in.cli("audit", "verify")
	if code == 0 || !strings.Contains(out, "BROKEN at entry 3") {
		t.Fatalf("audit verify on an edited log: exit %d: %s %s; want non-zero naming entry 3", code, out, errs)
	}
	if _, _, code := in.cli("audit", "bogus"); code != 2 {
		t.Errorf("audit bogus: exit %d, want 2", code)
	}
}
