package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/infra/sqlite"
)

// TestE2E_AuditVerify records key changes from the CLI and mutations through
// the server, checks the chain with `rdev audit verify`, then edits an entry
// in the database file and expects verify to name it and exit non-zero: a
// cut tail with its head rewound (caught by the checkpoint rdev wrote at
// shutdown), then an edited entry (caught by its MAC).
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
	if code != 0 || !regexp.MustCompile(`intact: (\d+) entries, (\d+) keyed, [1-9]\d* checkpoints checked`).MatchString(out) {
		t.Fatalf("audit verify on an intact log: exit %d: %s %s; want every entry keyed and the checkpoints checked", code, out, errs)
	}
	if m := regexp.MustCompile(`(\d+) entries, (\d+) keyed`).FindStringSubmatch(out); m[1] != m[2] {
		t.Errorf("audit verify: %s; want every entry keyed", out)
	}

	// Someone with write access to the file lifts the triggers, cuts the
	// last entry off and rewinds the chain head to match: only the
	// checkpoint written at shutdown tells.
	db, err := sqlite.Open(t.Context(), filepath.Join(in.data, "rdev.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	exec := func(q string) {
		t.Helper()
		if _, err := db.DB().ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var last int64
	if err := db.DB().QueryRowContext(t.Context(), "SELECT max(seq) FROM audit_log").Scan(&last); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete", "DROP TRIGGER audit_chain_head_forward",
		"DELETE FROM audit_log WHERE seq = (SELECT max(seq) FROM audit_log)",
		"UPDATE audit_chain_head SET (seq, hash) = (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1)"} {
		exec(q)
	}
	out, errs, code = in.cli("audit", "verify")
	if want := fmt.Sprintf("BROKEN at entry %d: missing: the checkpoint of", last); code == 0 || !strings.Contains(out, want) {
		t.Fatalf("audit verify on a cut log with its head rewound: exit %d: %s %s; want non-zero saying %q", code, out, errs, want)
	}
	// Without the checkpoints the database alone cannot tell.
	empty := filepath.Join(t.TempDir(), "none.jsonl")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, code := in.cli("audit", "verify", "--checkpoints", empty); code != 0 || !strings.Contains(out, "0 checkpoints checked") {
		t.Errorf("audit verify without checkpoints: exit %d: %s", code, out)
	}

	// An entry edited in place is named itself.
	exec("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
	out, errs, code = in.cli("audit", "verify")
	if code == 0 || !strings.Contains(out, "BROKEN at entry 3: its content does not match its MAC") {
		t.Fatalf("audit verify on an edited log: exit %d: %s %s; want non-zero naming entry 3", code, out, errs)
	}
	if _, _, code := in.cli("audit", "bogus"); code != 2 {
		t.Errorf("audit bogus: exit %d, want 2", code)
	}
}
