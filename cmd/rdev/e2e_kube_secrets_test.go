package main_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rdev-hq/rdev/infra/secretbox"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// TestE2E_KubeSecrets runs the real binary with the kube executor against
// a real API server, with each secrets backend: a secret set through the
// API reaches the pod's command (seen as its hash; a FILE secret as a file
// of the command's own), survives a restart,
// and is refused to a key without secrets:write or out of its project
// scope. With the database backend the value is nowhere in the data
// directory; with the kubernetes backend it is in the project's Secret,
// nowhere in rdev's data directory, and not in the API server's audit log
// (which records the Secret's requests), and rdev secrets rotate-key leaves
// it alone, saying so.
func TestE2E_KubeSecrets(t *testing.T) {
	kc, clusterDir := testenv.KubeCluster(t)
	for _, backend := range []string{"database", "kubernetes"} {
		t.Run(backend, func(t *testing.T) {
			var auditStart int64
			if backend == "kubernetes" && clusterDir != "" {
				if fi, err := os.Stat(filepath.Join(clusterDir, "audit.log")); err == nil {
					auditStart = fi.Size()
				}
			}
			nsDemo := testenv.KubeProject(t, kc, "kdemo", t.TempDir())
			nsOther := testenv.KubeProject(t, kc, "kother", t.TempDir())
			in := newInstance(t, "RDEV_EXECUTOR=kube", "KUBECONFIG="+kc, "RDEV_NAMESPACE="+nsDemo+","+nsOther, "RDEV_SECRETS_BACKEND="+backend)
			s := in.serve()
			admin, _ := in.createKey("--name", "admin", "--admin")
			writer, _ := in.createKey("--name", "writer", "--scopes", "secrets:write,projects:read", "--projects", "kdemo")
			runner, _ := in.createKey("--name", "runner", "--scopes", "projects:read,commands:read,commands:write")
			waitKubeExec(t, in, s, admin, "kdemo")
			waitKubeExec(t, in, s, admin, "kother")

			value := secretValue()
			vars := map[string]any{"p": "kdemo", "n": "MY_TOKEN", "v": value}
			if r := s.query(runner, setSecretM, vars); r.code() != "FORBIDDEN" {
				t.Errorf("setSecret without secrets:write: %+v", r)
			}
			if r := s.query(writer, setSecretM, map[string]any{"p": "kother", "n": "MY_TOKEN", "v": value}); r.code() != "NOT_FOUND" {
				t.Errorf("setSecret out of the key's project scope: %+v", r)
			}
			if r := s.query(writer, setSecretM, vars); r.code() != "" {
				t.Fatalf("setSecret: %+v", r)
			}
			setAndDelete(t, s, writer, "kdemo")
			if r := s.query(runner, secretsQ, map[string]any{"p": "kdemo"}); r.code() != "" || !strings.Contains(jsonText(t, r.Data), `"name":"MY_TOKEN"`) ||
				strings.Contains(jsonText(t, r.Data), "UNUSED") {
				t.Errorf("Project.secrets: %+v", r)
			}
			want := sha256Hex(value)
			if got := kubeExecHash(t, in, s, runner, "kdemo"); got != want {
				t.Errorf("kdemo's command saw a MY_TOKEN hashing to %s, want %s", got, want)
			}
			// A file secret: a file of the command's own in the pod, not a
			// variable.
			fileValue := secretValue()
			if r := s.query(writer, setFileSecretM, map[string]any{"p": "kdemo", "n": "DEPLOY_KEY", "v": fileValue}); r.code() != "" {
				t.Fatalf("setSecret as a file: %+v", r)
			}
			cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+runner)}
			out, errs, code := cli.cli("exec", "--shell", "kdemo", "--",
				`sha256sum < "$RDEV_SECRETS_DIR/DEPLOY_KEY" | cut -d' ' -f1; printf '%s\n' "${DEPLOY_KEY-unset}"`)
			if f := strings.Fields(out); code != 0 || len(f) != 2 || f[0] != sha256Hex(fileValue) || f[1] != "unset" {
				t.Errorf("file secret: exit %d, stdout %q, stderr %q; want the file's hash and no variable", code, out, errs)
			}
			if r := s.query(runner, secretsQ, map[string]any{"p": "kdemo"}); !strings.Contains(jsonText(t, r.Data), `"delivery":"FILE","name":"DEPLOY_KEY"`) {
				t.Errorf("Project.secrets after a file secret: %+v", r)
			}
			if got := kubeExecHash(t, in, s, runner, "kother"); got != sha256Hex("") {
				t.Errorf("kother's command saw a MY_TOKEN hashing to %s, want none", got)
			}
			audit := jsonText(t, s.query(admin, `{ auditLog(first: 100) { nodes { action details { key value } } } }`, nil).Data)
			if !strings.Contains(audit, "secret.set") || !strings.Contains(audit, "secret.delete") || strings.Contains(audit, value) {
				t.Errorf("audit log: %s; want secret.set and secret.delete without the value", audit)
			}
			s.stop()

			s = in.serve()
			waitKubeExec(t, in, s, admin, "kdemo")
			if got := kubeExecHash(t, in, s, runner, "kdemo"); got != want {
				t.Errorf("after a restart: hash %s, want %s", got, want)
			}
			s.stop()
			assertNowhere(t, in.data, value)
			assertNowhere(t, in.data, fileValue)
			if strings.Contains(s.output(), value) || strings.Contains(s.output(), fileValue) {
				t.Error("the server's log holds a secret's value")
			}

			stored := kubeSecretData(t, kc, nsDemo, "rdev-project-secrets-kdemo")
			switch backend {
			case "database":
				if stored != nil {
					t.Errorf("the database backend made a Kubernetes Secret: keys %v", stored)
				}
			case "kubernetes":
				if string(stored["MY_TOKEN"]) != value || string(stored["DEPLOY_KEY"]) != fileValue || len(stored) != 2 {
					t.Errorf("the project's Secret holds %d keys, MY_TOKEN matching %v, DEPLOY_KEY matching %v",
						len(stored), string(stored["MY_TOKEN"]) == value, string(stored["DEPLOY_KEY"]) == fileValue)
				}
				assertNotInAuditLog(t, clusterDir, auditStart, value)
				assertNotInAuditLog(t, clusterDir, auditStart, fileValue)

				// Rotating rdev's key leaves the Secrets alone, and says so.
				newKey := filepath.Join(t.TempDir(), "new.key")
				if err := os.WriteFile(newKey, []byte(secretbox.NewKey()+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				out, errs, code := in.cli("secrets", "rotate-key", "--new-key-file", newKey)
				if code != 0 || !strings.Contains(out, "0 secrets sealed again") || !strings.Contains(out, "not rotated: the cluster's encryption at rest covers them") {
					t.Errorf("rotate-key: exit %d, stdout %q, stderr %q", code, out, errs)
				}
				s = in.serve()
				waitKubeExec(t, in, s, admin, "kdemo")
				if got := kubeExecHash(t, in, s, runner, "kdemo"); got != want {
					t.Errorf("after rotate-key: hash %s, want %s", got, want)
				}
				s.stop()
			}
		})
	}
}

// TestE2E_KubeSecretsNeedKube: the kubernetes secrets backend refuses to
// start without the kube executor, saying why.
func TestE2E_KubeSecretsNeedKube(t *testing.T) {
	in := newInstance(t, "RDEV_SECRETS_BACKEND=kubernetes")
	_, errs, code := in.cli("serve", "--host", "127.0.0.1", "--port", "0")
	if code == 0 || !strings.Contains(errs, "RDEV_SECRETS_BACKEND=kubernetes") || !strings.Contains(errs, "RDEV_EXECUTOR=kube") {
		t.Errorf("serve: exit %d, stderr %q", code, errs)
	}
}

// waitKubeExec waits until a command runs in project's pod: kwok learns of
// its Exec object through a watch of its own, maybe after the pod became
// ready, and a restarted server must first find the pod.
func waitKubeExec(t *testing.T, in *instance, s *server, token, project string) {
	t.Helper()
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, errs, code := cli.cli("exec", project, "--", "true")
		if code == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("commands never ran in project %s: %d %s", project, code, errs)
		}
	}
}

// kubeExecHash runs hashScript in project through the CLI and returns what
// it printed.
func kubeExecHash(t *testing.T, in *instance, s *server, token, project string) string {
	t.Helper()
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)}
	out, errs, code := cli.cli("exec", "--shell", project, "--", hashScript)
	if code != 0 {
		t.Fatalf("exec in %s: exit %d, stderr %q", project, code, errs)
	}
	return strings.TrimSpace(out)
}

// kubeSecretData returns the data of Secret ns/name, nil if there is none.
func kubeSecretData(t *testing.T, kubeconfig, ns, name string) map[string][]byte {
	t.Helper()
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := kubernetes.NewForConfigOrDie(rc).CoreV1().Secrets(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	if sec.Labels["app.kubernetes.io/managed-by"] != "rdev" || sec.Labels["rdev.dev/project"] == "" {
		t.Errorf("Secret %s/%s labels: %v", ns, name, sec.Labels)
	}
	return sec.Data
}

// assertNotInAuditLog fails unless the API server's audit log, from byte
// start on, records requests for the project's Secret and holds value in
// none of the forms a request body would carry it.
func assertNotInAuditLog(t *testing.T, clusterDir string, start int64, value string) {
	t.Helper()
	if clusterDir == "" {
		t.Log("the test cluster's directory is unknown: its audit log was not searched")
		return
	}
	var audit []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(clusterDir, "audit.log")) //nolint:gosec // the test cluster's own log
		if err != nil {
			t.Fatal(err)
		}
		audit = b[min(start, int64(len(b))):]
		if bytes.Contains(audit, []byte("/secrets/rdev-project-secrets-kdemo")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit log records no request for the Secret rdev-project-secrets-kdemo (%d bytes searched): is its policy the one scripts/testcluster.sh writes?", len(audit))
		}
	}
	for _, form := range []string{value, hex.EncodeToString([]byte(value)), base64.StdEncoding.EncodeToString([]byte(value))} {
		if bytes.Contains(audit, []byte(form)) {
			t.Errorf("the API server's audit log holds the secret's value (%s)", fmt.Sprint(len(form), " bytes form"))
		}
	}
}
