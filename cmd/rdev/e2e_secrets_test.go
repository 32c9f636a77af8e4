package main_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/rdev-hq/rdev/infra/secretbox"
	"github.com/rdev-hq/rdev/internal/testenv"
)

const (
	setSecretM     = `mutation($p: ID!, $n: String!, $v: String!) { setSecret(input: {projectId: $p, name: $n, value: $v}) { secret { projectId name createdAt updatedAt } } }`
	deleteSecretM  = `mutation($p: ID!, $n: String!) { deleteSecret(input: {projectId: $p, name: $n}) { projectId name } }`
	setFileSecretM = `mutation($p: ID!, $n: String!, $v: String!) { setSecret(input: {projectId: $p, name: $n, value: $v, delivery: FILE}) { secret { name delivery } } }`
	secretsQ       = `query($p: ID!) { project(id: $p) { secrets { name delivery createdAt updatedAt } } }`
	// hashScript prints the SHA-256 of $MY_TOKEN, never the value itself.
	hashScript = `printf %s "$MY_TOKEN" | sha256sum | cut -d' ' -f1`
)

// secretValue returns a value that appears nowhere by chance.
func secretValue() string { return "s3cr3t-" + strings.ToLower(rand.Text()) }

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// execHash runs hashScript in project demo through the CLI and returns what
// it printed.
func execHash(t *testing.T, in *instance, s *server, token string) string {
	t.Helper()
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)}
	out, errs, code := cli.cli("exec", "--shell", "demo", "--", hashScript)
	if code != 0 {
		t.Fatalf("exec: exit %d, stderr %q", code, errs)
	}
	return strings.TrimSpace(out)
}

// setAndDelete sets the secret UNUSED of project with token, deletes it,
// and then finds deleting it again NOT_FOUND.
func setAndDelete(t *testing.T, s *server, token, project string) {
	t.Helper()
	if r := s.query(token, setSecretM, map[string]any{"p": project, "n": "UNUSED", "v": "x"}); r.code() != "" {
		t.Fatalf("setSecret UNUSED: %+v", r)
	}
	if r := s.query(token, deleteSecretM, map[string]any{"p": project, "n": "UNUSED"}); r.code() != "" {
		t.Errorf("deleteSecret: %+v", r)
	}
	if r := s.query(token, deleteSecretM, map[string]any{"p": project, "n": "UNUSED"}); r.code() != "NOT_FOUND" {
		t.Errorf("deleteSecret again: %+v", r)
	}
}

// assertNowhere fails if value, or its hex, is in any file under dir.
func assertNowhere(t *testing.T, dir, value string) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path) //nolint:gosec // the test's own data directory
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, []byte(value)) || bytes.Contains(b, []byte(hex.EncodeToString([]byte(value)))) {
			t.Errorf("%s holds the secret's value", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files == 0 {
		t.Fatalf("no files under %s: nothing was searched", dir)
	}
}

// TestE2E_Secrets sets a project secret through the API of the real binary
// on the embedded database and checks that it reaches the project's
// commands (as a hash), survives a restart and a key rotation, is refused
// to keys without secrets:write or out of their project scope, and is
// nowhere in the data directory, the logs or the audit log; and that a
// wrong key stops the server from starting.
func TestE2E_Secrets(t *testing.T) {
	in := newInstance(t)
	s := in.serve()
	if !s.waitOutput("generated a secrets key") {
		t.Errorf("the first start does not say it made a secrets key: %s", s.output())
	}
	keyFile := filepath.Join(in.data, "secrets.key")
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v; want mode 0600", fi, err)
	}
	if err := os.MkdirAll(filepath.Join(in.workspace, "other"), 0o750); err != nil {
		t.Fatal(err)
	}
	admin, _ := in.createKey("--name", "admin", "--admin")
	writer, _ := in.createKey("--name", "writer", "--scopes", "secrets:write,projects:read", "--projects", "demo")
	runner, _ := in.createKey("--name", "runner", "--scopes", "projects:read,commands:read,commands:write")
	value := secretValue()

	vars := map[string]any{"p": "demo", "n": "MY_TOKEN", "v": value}
	if r := s.query(runner, setSecretM, vars); r.code() != "FORBIDDEN" {
		t.Errorf("setSecret without secrets:write: %+v", r)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if r := s.query(admin, `{ project(id: "other") { id } }`, nil); r.code() == "" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("project other never appeared: %+v", r)
		}
	}
	if r := s.query(writer, setSecretM, map[string]any{"p": "other", "n": "MY_TOKEN", "v": value}); r.code() != "NOT_FOUND" {
		t.Errorf("setSecret out of the key's project scope: %+v", r)
	}
	if r := s.query(writer, secretsQ, map[string]any{"p": "other"}); r.code() != "NOT_FOUND" {
		t.Errorf("secrets out of the key's project scope: %+v", r)
	}
	for _, bad := range []string{"my_token", "RDEV_X", "PATH", "A-B"} {
		if r := s.query(writer, setSecretM, map[string]any{"p": "demo", "n": bad, "v": "x"}); r.code() != "INVALID_INPUT" {
			t.Errorf("setSecret named %q: %+v", bad, r)
		}
	}
	r := s.query(writer, setSecretM, vars)
	if r.code() != "" {
		t.Fatalf("setSecret: %+v", r)
	}
	setAndDelete(t, s, writer, "demo")
	listed := s.query(runner, secretsQ, map[string]any{"p": "demo"})
	if listed.code() != "" || !strings.Contains(jsonText(t, listed.Data), `"name":"MY_TOKEN"`) {
		t.Errorf("Project.secrets: %+v", listed)
	}

	want := sha256Hex(value)
	if got := execHash(t, in, s, runner); got != want {
		t.Errorf("the command saw a MY_TOKEN hashing to %s, want %s", got, want)
	}

	// A file secret: a file of the command's own, not a variable, gone
	// once the command has ended.
	fileRand := secretValue()
	fileValue := fileRand + "\n-----END KEY-----\n"
	if r := s.query(writer, setFileSecretM, map[string]any{"p": "demo", "n": "DEPLOY_KEY", "v": fileValue}); r.code() != "" ||
		!strings.Contains(jsonText(t, r.Data), `"delivery":"FILE"`) {
		t.Fatalf("setSecret as a file: %+v", r)
	}
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+runner)}
	out, errs, code := cli.cli("exec", "--shell", "demo", "--",
		`echo "$RDEV_SECRETS_DIR"; sha256sum < "$RDEV_SECRETS_DIR/DEPLOY_KEY" | cut -d' ' -f1; printf '%s\n' "${DEPLOY_KEY-unset}"`)
	if f := strings.Fields(out); code != 0 || len(f) != 3 || f[1] != sha256Hex(fileValue) || f[2] != "unset" {
		t.Errorf("file secret: exit %d, stdout %q, stderr %q; want its directory, the file's hash and no variable", code, out, errs)
	} else if _, err := os.Stat(f[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the command's secrets directory %s outlived it (%v)", f[0], err)
	}
	audit := s.query(admin, `{ auditLog(first: 100) { nodes { action details { key value } } } }`, nil)
	text := jsonText(t, audit.Data)
	if !strings.Contains(text, "secret.set") || !strings.Contains(text, "secret.delete") || strings.Contains(text, value) {
		t.Errorf("audit log: %s; want secret.set and secret.delete without the value", text)
	}

	s.stop()
	assertNowhere(t, in.data, value)
	assertNowhere(t, in.data, fileRand)
	if strings.Contains(s.output(), value) || strings.Contains(s.output(), fileRand) {
		t.Error("the server's log holds a secret's value")
	}

	t.Run("SurvivesRestart", func(t *testing.T) {
		s := in.serve()
		if got := execHash(t, in, s, runner); got != want {
			t.Errorf("after a restart: hash %s, want %s", got, want)
		}
		s.stop()
	})

	oldKey, err := os.ReadFile(keyFile) //nolint:gosec // the test's own key
	if err != nil {
		t.Fatal(err)
	}
	t.Run("WrongKeyFailsStart", func(t *testing.T) {
		wrong := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SECRETS_KEY="+secretbox.NewKey())}
		_, errs, code := wrong.cli("serve", "--host", "127.0.0.1", "--port", "0")
		if code == 0 || !strings.Contains(errs, "the secrets key is not the one the stored secrets were sealed with") {
			t.Errorf("serve with another key: exit %d, stderr %q", code, errs)
		}
	})

	t.Run("RotateKey", func(t *testing.T) {
		newKey := filepath.Join(t.TempDir(), "new.key")
		if err := os.WriteFile(newKey, []byte(secretbox.NewKey()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		out, errs, code := in.cli("secrets", "rotate-key", "--new-key-file", newKey)
		if code != 0 || !strings.Contains(out, "2 secrets sealed again") {
			t.Fatalf("rotate-key: exit %d, stdout %q, stderr %q", code, out, errs)
		}
		// The old key now fails start-up; the new one (which replaced the
		// data directory's key file) works.
		old := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SECRETS_KEY="+string(oldKey))}
		if _, errs, code := old.cli("serve", "--host", "127.0.0.1", "--port", "0"); code == 0 || !strings.Contains(errs, "not the one") {
			t.Errorf("serve with the old key after rotation: exit %d, stderr %q", code, errs)
		}
		s := in.serve()
		if got := execHash(t, in, s, runner); got != want {
			t.Errorf("after rotation: hash %s, want %s", got, want)
		}
		s.stop()
		assertNowhere(t, in.data, value)
	})
}

// TestE2E_SecretsPostgres runs a command with a secret on Postgres, with
// the key from a file, and then searches every row of every table (and a
// pg_dump of the schema, where pg_dump runs) for the value.
func TestE2E_SecretsPostgres(t *testing.T) {
	url, schema := testenv.PostgresSchema(t)
	keyFile := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(keyFile, []byte(secretbox.NewKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	in := newInstance(t, "DATABASE_URL="+url, "RDEV_SECRETS_KEY_FILE="+keyFile)
	if out, errs, code := in.cli("migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %d %s %s", code, out, errs)
	}
	s := in.serve()
	admin, _ := in.createKey("--name", "admin", "--admin")
	value := secretValue()
	if r := s.query(admin, setSecretM, map[string]any{"p": "demo", "n": "MY_TOKEN", "v": value}); r.code() != "" {
		t.Fatalf("setSecret: %+v", r)
	}
	if got, want := execHash(t, in, s, admin), sha256Hex(value); got != want {
		t.Errorf("the command saw a MY_TOKEN hashing to %s, want %s", got, want)
	}
	s.stop()

	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(url)))
	defer func() { _ = db.Close() }()
	assertNoRowHolds(t, db, schema, value)
	if path, err := exec.LookPath("pg_dump"); err == nil {
		out, err := exec.CommandContext(t.Context(), path, "--schema="+schema, "--dbname="+testenv.PostgresURL()).Output() //nolint:gosec // the test's own database
		switch {
		case err != nil:
			t.Logf("pg_dump did not run (%v); the rows were searched", err)
		case !bytes.Contains(out, []byte("secrets")):
			t.Errorf("pg_dump's output lacks the secrets table: %d bytes", len(out))
		case bytes.Contains(out, []byte(value)) || bytes.Contains(out, []byte(hex.EncodeToString([]byte(value)))):
			t.Error("pg_dump's output holds the secret's value")
		}
	}
	if strings.Contains(s.output(), value) {
		t.Error("the server's log holds the secret's value")
	}
}

// assertNoRowHolds fails if value, or its hex, is in any row of any table
// of schema.
func assertNoRowHolds(t *testing.T, db *sql.DB, schema, value string) {
	t.Helper()
	tables := queryStrings(t, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'`, schema)
	if len(tables) < 5 {
		t.Fatalf("tables %q: the schema is not rdev's", tables)
	}
	seen := 0
	for _, table := range tables {
		// Each row as text holds every column; bytea shows as hex.
		for _, row := range queryStrings(t, db, `SELECT t::text FROM "`+table+`" t`) {
			seen++
			if strings.Contains(row, value) || strings.Contains(row, hex.EncodeToString([]byte(value))) {
				t.Errorf("a row of %s holds the secret's value", table)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no rows: nothing was searched")
	}
}

// jsonText returns v as compact JSON.
func jsonText(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// queryStrings returns the one text column of q's rows.
func queryStrings(t *testing.T, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
