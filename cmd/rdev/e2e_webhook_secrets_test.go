package main_test

import (
	"database/sql"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/uptrace/bun/driver/pgdriver"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/secretbox"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// receiveRun runs a command and waits for its queued message and its end,
// each verified with the endpoint's signing secret by the reference
// library.
func receiveRun(t *testing.T, s *server, token string, rcv *hookReceiver) {
	t.Helper()
	cmd := executeTrue(t, s, token, "true")
	if got := rcv.events(t, 20*time.Second, func(m map[string][]string) bool { return complete(m[cmd]) }); !complete(got[cmd]) {
		t.Fatalf("messages of %s = %v, want its queueing and its end, verified", cmd, got[cmd])
	}
}

// rotateKey runs rdev secrets rotate-key to a fresh key, which it returns
// the file of, and checks that it rewrapped want values.
func rotateKey(t *testing.T, in *instance, want int) string {
	t.Helper()
	newKey := filepath.Join(t.TempDir(), "new.key")
	if err := os.WriteFile(newKey, []byte(secretbox.NewKey()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, code := in.cli("secrets", "rotate-key", "--new-key-file", newKey)
	if code != 0 || !strings.Contains(out, strconv.Itoa(want)+" secrets sealed again") {
		t.Fatalf("rotate-key: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	return newKey
}

// hookedRun creates an endpoint on a loopback receiver with a new admin key
// of in, runs a command and receives its messages, verified; it returns
// the key, the receiver and the endpoint's signing secret.
func hookedRun(t *testing.T, in *instance, s *server) (token string, rcv *hookReceiver, secret string) {
	t.Helper()
	token, _ = in.createKey("--name", "hooks", "--admin")
	rcv = newHookReceiver(t)
	secret = createHook(t, s, token, rcv.URL+"/rdev")
	rcv.setSecret(t, secret)
	receiveRun(t, s, token, rcv)
	s.stop()
	return token, rcv, secret
}

// TestE2E_WebhookSecretsSealed creates a webhook endpoint through the real
// binary on the embedded database, receives verified messages, and then
// finds its signing secret in no byte of the data directory; `rdev keys
// revoke` works beside it, and after `rdev secrets rotate-key` and a
// restart, messages still verify.
func TestE2E_WebhookSecretsSealed(t *testing.T) {
	in := newInstance(t, webhookEnv...)
	token, rcv, secret := hookedRun(t, in, in.serve())
	assertNowhere(t, in.data, secret)
	assertNowhere(t, in.data, strings.TrimPrefix(secret, domain.WebhookSecretPrefix))

	// The CLI opens the database without the secrets key; revoking a key
	// queues a message to every endpoint, whose secret it need not open.
	_, otherID := in.createKey("--name", "other", "--scopes", "projects:read")
	if _, errs, code := in.cli("keys", "revoke", otherID); code != 0 {
		t.Fatalf("keys revoke beside a sealed webhook secret: exit %d, %s", code, errs)
	}

	rotateKey(t, in, 1) // the data directory's key file is replaced
	s := in.serve()
	receiveRun(t, s, token, rcv)
	s.stop()
	assertNowhere(t, in.data, strings.TrimPrefix(secret, domain.WebhookSecretPrefix))
}

// TestE2E_WebhookSecretsSealedPostgres creates an endpoint on Postgres
// without a secrets key (its secret stays in clear, with a warning), then
// starts with a key: the secret is sealed at start-up, once, is in no row
// of the schema, and messages still verify, before and after a rotation.
func TestE2E_WebhookSecretsSealedPostgres(t *testing.T) {
	url, schema := testenv.PostgresSchema(t)
	plain := newInstance(t, append([]string{"DATABASE_URL=" + url}, webhookEnv...)...)
	s := plain.serve()
	if !s.waitOutput("webhook signing secrets are stored in the database in clear") {
		t.Errorf("no warning that webhook secrets stay in clear without a key: %s", s.output())
	}
	token, rcv, secret := hookedRun(t, plain, s)

	db := sql.OpenDB(pgdriver.NewConnector(pgdriver.WithDSN(url)))
	defer func() { _ = db.Close() }()
	column := func() string {
		t.Helper()
		v := queryStrings(t, db, `SELECT secret FROM webhooks`)
		if len(v) != 1 {
			t.Fatalf("webhooks: %q, want one", v)
		}
		return v[0]
	}
	if got := column(); got != secret {
		t.Fatalf("without a key the stored secret is %q, want it as it was", got)
	}

	keyFile := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(keyFile, []byte(secretbox.NewKey()), 0o600); err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, env: append(append([]string{}, plain.env...), "RDEV_SECRETS_KEY_FILE="+keyFile)}
	s = in.serve()
	if !s.waitOutput("sealed the webhook signing secrets stored in clear") {
		t.Errorf("start-up with a key does not say it sealed the secret: %s", s.output())
	}
	receiveRun(t, s, token, rcv)
	s.stop()
	sealed := column()
	assertNoRowHolds(t, db, schema, strings.TrimPrefix(secret, domain.WebhookSecretPrefix))

	s = in.serve()
	receiveRun(t, s, token, rcv)
	s.stop()
	// Deliveries save the endpoint (its failure count) but leave the
	// sealed secret as it was.
	if strings.Contains(s.output(), "sealed the webhook signing secrets") || column() != sealed {
		t.Errorf("the second start sealed again: %s", s.output())
	}

	newKey := rotateKey(t, in, 1)
	if column() == sealed {
		t.Error("rotate-key left the webhook's sealed secret as it was")
	}
	rotated := &instance{t: t, env: append(append([]string{}, plain.env...), "RDEV_SECRETS_KEY_FILE="+newKey)}
	s = rotated.serve()
	receiveRun(t, s, token, rcv)
	s.stop()
	assertNoRowHolds(t, db, schema, strings.TrimPrefix(secret, domain.WebhookSecretPrefix))
}
