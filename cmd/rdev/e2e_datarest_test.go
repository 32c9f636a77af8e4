package main_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// TestE2E_DataAtRest runs a command with an env value through the real
// binary, with JSON logs at debug level, a webhook and a trace exporter, on
// a data directory that starts open to others, on SQLite and on Postgres.
// The command sees the value; once it has ended, the value is in no log
// line, webhook message, span, nor any byte of the data directory
// (database, WAL, output segments, key files) or of a dump of the Postgres
// schema; the data directory is 0700 and every file in it 0600.
func TestE2E_DataAtRest(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testDataAtRest(t, "", nil) })
	t.Run("Postgres", func(t *testing.T) {
		url, schema := testenv.PostgresSchema(t)
		pgDump, err := exec.LookPath("pg_dump")
		testenv.RequireService(t, "pg_dump (Debian's postgresql-client)", err)
		testDataAtRest(t, url, func() []byte {
			out, err := exec.CommandContext(t.Context(), pgDump, "--schema="+schema, testenv.PostgresURL()).Output() //nolint:gosec // the test's own database
			if err != nil {
				t.Fatalf("pg_dump: %v", err)
			}
			if !bytes.Contains(out, []byte("MY_TOKEN")) {
				t.Fatalf("the dump of schema %s does not hold the command's env names; the test would prove nothing", schema)
			}
			return out
		})
	})
}

// testDataAtRest is TestE2E_DataAtRest on the database at databaseURL
// (embedded SQLite if ""), whose contents dump returns (nil for none).
func testDataAtRest(t *testing.T, databaseURL string, dump func() []byte) {
	traces := newOTLPReceiver(t, nil)
	in := newInstance(t, append([]string{"RDEV_LOG_FORMAT=json", "LOG_LEVEL=debug", "DATABASE_URL=" + databaseURL,
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + traces.URL, "OTEL_BSP_SCHEDULE_DELAY=60000"}, webhookEnv...)...)
	if err := os.MkdirAll(in.data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(in.data, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	token, _ := in.createKey("--name", "rest", "--admin")
	var logs bytes.Buffer
	s := in.serveWith(&lockedWriter{mu: new(sync.Mutex), w: &logs}, "--host", "127.0.0.1", "--port", "0")
	hooks := newHookReceiver(t)
	hooks.setSecret(t, createHook(t, s, token, hooks.URL+"/rdev"))

	b := make([]byte, 16)
	_, _ = rand.Read(b)
	value := "supersecretvalue-" + hex.EncodeToString(b)
	r := s.query(token, `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
		map[string]any{"in": map[string]any{"projectId": "demo",
			// Success shows the value arrived, without its being in argv.
			"shell": `test "${#MY_TOKEN}" = ` + strconv.Itoa(len(value)),
			"env":   []map[string]any{{"name": "MY_TOKEN", "value": value}}}})
	if len(r.Errors) > 0 {
		t.Fatalf("executeCommand: %+v", r.Errors)
	}
	id := r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	hooks.events(t, 20*time.Second, func(m map[string][]string) bool { return complete(m[id]) })
	r = s.query(token, `query($id: ID!) { command(id: $id) { status envNames } }`, map[string]any{"id": id})
	if got, _ := json.Marshal(r.Data); string(got) != `{"command":{"envNames":["MY_TOKEN"],"status":"SUCCEEDED"}}` {
		t.Fatalf("command %s: %s %+v; want SUCCEEDED (it saw the value) with envNames [MY_TOKEN]", id, got, r.Errors)
	}
	// On Postgres the directory holds files only while storage refuses
	// results or local commands run.
	embedded := databaseURL == ""
	assertPrivate(t, in.data, embedded)
	s.stop()
	assertPrivate(t, in.data, embedded)

	if !strings.Contains(logs.String(), `"level":"DEBUG"`) || !strings.Contains(logs.String(), "data directory made private") {
		t.Fatalf("the logs hold no debug line or no word of the data directory made private; the test would prove less:\n%.3000s", logs.String())
	}
	if strings.Contains(logs.String()+s.output(), value) {
		t.Error("the env value is in the logs")
	}
	hooks.mu.Lock()
	msgs, _ := json.Marshal(hooks.byID)
	hooks.mu.Unlock()
	if len(msgs) < 100 || bytes.Contains(msgs, []byte(value)) {
		t.Errorf("the webhook messages (%d bytes) hold the env value, or there are none", len(msgs))
	}
	traces.mu.Lock()
	spans := len(traces.spans)
	for _, sp := range traces.spans {
		if pb, _ := proto.Marshal(sp); bytes.Contains(pb, []byte(value)) {
			t.Errorf("span %q holds the env value", sp.GetName())
		}
	}
	traces.mu.Unlock()
	if spans == 0 {
		t.Error("no spans were exported; the test would prove less")
	}
	err := filepath.WalkDir(in.data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path) //nolint:gosec // the test's own directory
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(value)) {
			t.Errorf("%s holds the env value", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if dump != nil && bytes.Contains(dump(), []byte(value)) {
		t.Error("the database dump holds the env value")
	}
}

// assertPrivate checks that dir and every directory in it is 0700 and every
// file 0600, and that there are files if wantFiles.
func assertPrivate(t *testing.T, dir string, wantFiles bool) {
	t.Helper()
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files++
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %#o, want %#o", path, info.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if wantFiles && files == 0 {
		t.Errorf("%s holds no file; the check would prove nothing", dir)
	}
}
