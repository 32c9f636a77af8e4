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

	"github.com/rdev-hq/rdev/infra/secretbox"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// TestE2E_DataAtRest runs a command with an env value, an environment
// secret and a file secret of its project through the real binary, with
// JSON logs at debug level, a webhook and a trace exporter, on a data
// directory that starts open to others, on SQLite and on Postgres. The
// command sees the values; once it has ended, none is in a log line,
// webhook message, span, nor any byte of the data directory (database,
// WAL, output segments, key files) or of a dump of the Postgres schema;
// the data directory is 0700 and every file in it 0600.
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
			if !bytes.Contains(out, []byte("MY_TOKEN")) || !bytes.Contains(out, []byte("SECRET_FILE")) {
				t.Fatalf("the dump of schema %s does not hold the command's env names or the secrets' names; the test would prove nothing", schema)
			}
			return out
		})
	})
}

// testDataAtRest is TestE2E_DataAtRest on the database at databaseURL
// (embedded SQLite if ""), whose contents dump returns (nil for none).
func testDataAtRest(t *testing.T, databaseURL string, dump func() []byte) {
	traces := newOTLPReceiver(t, nil)
	env := append([]string{"RDEV_LOG_FORMAT=json", "LOG_LEVEL=debug", "DATABASE_URL=" + databaseURL,
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + traces.URL, "OTEL_BSP_SCHEDULE_DELAY=60000"}, webhookEnv...)
	if databaseURL != "" {
		keyFile := filepath.Join(t.TempDir(), "kek")
		if err := os.WriteFile(keyFile, []byte(secretbox.NewKey()), 0o600); err != nil {
			t.Fatal(err)
		}
		env = append(env, "RDEV_SECRETS_KEY_FILE="+keyFile)
	}
	in := newInstance(t, env...)
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

	value, envSecret, fileSecret := "supersecretvalue-"+randomHex(), "envsecret-"+randomHex(), "filesecret-"+randomHex()
	values := map[string]string{"env value": value, "environment secret": envSecret, "file secret": fileSecret}
	if r := s.query(token, setSecretM, map[string]any{"p": "demo", "n": "SECRET_ENV", "v": envSecret}); r.code() != "" {
		t.Fatalf("setSecret: %+v", r)
	}
	if r := s.query(token, setFileSecretM, map[string]any{"p": "demo", "n": "SECRET_FILE", "v": fileSecret}); r.code() != "" {
		t.Fatalf("setSecret as a file: %+v", r)
	}
	r := s.query(token, `mutation($in: ExecuteCommandInput!) { executeCommand(input: $in) { command { id } } }`,
		map[string]any{"in": map[string]any{"projectId": "demo",
			// Success shows the values arrived, without their being in argv.
			"shell": `test "${#MY_TOKEN}" = ` + strconv.Itoa(len(value)) + ` && test "${#SECRET_ENV}" = ` + strconv.Itoa(len(envSecret)) +
				` && f=$(cat "$RDEV_SECRETS_DIR/SECRET_FILE") && test "${#f}" = ` + strconv.Itoa(len(fileSecret)),
			"env": []map[string]any{{"name": "MY_TOKEN", "value": value}}}})
	if len(r.Errors) > 0 {
		t.Fatalf("executeCommand: %+v", r.Errors)
	}
	id := r.Data["executeCommand"].(map[string]any)["command"].(map[string]any)["id"].(string)
	hooks.events(t, 20*time.Second, func(m map[string][]string) bool { return complete(m[id]) })
	r = s.query(token, `query($id: ID!) { command(id: $id) { status envNames } }`, map[string]any{"id": id})
	if got, _ := json.Marshal(r.Data); string(got) != `{"command":{"envNames":["MY_TOKEN"],"status":"SUCCEEDED"}}` {
		t.Fatalf("command %s: %s %+v; want SUCCEEDED (it saw the values) with envNames [MY_TOKEN]", id, got, r.Errors)
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
	hooks.mu.Lock()
	msgs, _ := json.Marshal(hooks.byID)
	hooks.mu.Unlock()
	if len(msgs) < 100 {
		t.Errorf("the webhook messages are %d bytes; the test would prove less", len(msgs))
	}
	traces.mu.Lock()
	var spans [][]byte
	for _, sp := range traces.spans {
		pb, _ := proto.Marshal(sp)
		spans = append(spans, pb)
	}
	traces.mu.Unlock()
	if len(spans) == 0 {
		t.Error("no spans were exported; the test would prove less")
	}
	var dumped []byte
	if dump != nil {
		dumped = dump()
	}
	for what, v := range values {
		if strings.Contains(logs.String()+s.output(), v) {
			t.Errorf("the %s is in the logs", what)
		}
		if bytes.Contains(msgs, []byte(v)) {
			t.Errorf("the webhook messages hold the %s", what)
		}
		for _, pb := range spans {
			if bytes.Contains(pb, []byte(v)) {
				t.Errorf("a span holds the %s", what)
			}
		}
		if embedded {
			assertNowhere(t, in.data, v)
		}
		if bytes.Contains(dumped, []byte(v)) || bytes.Contains(dumped, []byte(hex.EncodeToString([]byte(v)))) {
			t.Errorf("the database dump holds the %s", what)
		}
	}
}

// randomHex returns 32 random hex digits.
func randomHex() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
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
