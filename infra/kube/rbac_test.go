package kube

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/rdev-hq/rdev/domain"
)

// shippedRole returns the Role in deploy/base/rbac.yaml.
func shippedRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "base", "rbac.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for doc := range strings.SplitSeq(string(b), "\n---\n") {
		var r rbacv1.Role
		if err := yaml.UnmarshalStrict([]byte(doc), &r); err == nil && r.Kind == "Role" {
			return &r
		}
	}
	t.Fatal("no Role in deploy/base/rbac.yaml")
	return nil
}

// grant binds a copy of role, in ns, to the user.
func grant(t *testing.T, c *testCluster, ns, user string, role *rbacv1.Role) {
	t.Helper()
	r := role.DeepCopy()
	r.Namespace = ns
	if _, err := c.client.RbacV1().Roles(ns).Create(t.Context(), r, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: r.Name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if _, err := c.client.RbacV1().RoleBindings(ns).Create(t.Context(), rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRBAC_ShippedRoleIsEnough: a user holding exactly the Role in deploy/
// can discover projects, run commands and stop them, and is refused
// anything more.
func TestRBAC_ShippedRoleIsEnough(t *testing.T) {
	t.Parallel()
	c := mustCluster(t)
	if c.dir == "" {
		t.Skip("RDEV_TEST_KUBECONFIG is not in a scripts/testcluster.sh directory: cannot make a user")
	}
	role := shippedRole(t)
	want := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec"}, Verbs: []string{"create", "get"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update"}},
	}
	if diff := cmp.Diff(want, role.Rules); diff != "" {
		t.Fatalf("deploy/base/rbac.yaml Role rules (-want +got):\n%s", diff)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	user := "rdev-rbac-" + hex.EncodeToString(b[:])
	out, err := exec.Command("bash", filepath.Join("..", "..", "scripts", "testcluster.sh"), "user", c.dir, user).CombinedOutput()
	if err != nil {
		t.Fatalf("testcluster.sh user: %v: %s", err, out)
	}
	userKubeconfig := strings.TrimSpace(lastLines(string(out), 1))

	ns, execless := c.namespace(t), c.namespace(t)
	dir := t.TempDir()
	c.pod(t, ns, "p-0", map[string]string{DefaultLabelKey: "p"}, nil)
	c.localExec(t, ns, "p-0", dir)
	grant(t, c, ns, user, role)
	readOnly := role.DeepCopy()
	readOnly.Rules = readOnly.Rules[:1]
	c.pod(t, execless, "q-0", map[string]string{DefaultLabelKey: "q"}, nil)
	c.localExec(t, execless, "q-0", dir)
	grant(t, c, execless, user, readOnly)

	cl, err := NewCluster(Config{Kubeconfig: userKubeconfig, Namespaces: []string{ns, execless}})
	if err != nil {
		t.Fatal(err)
	}
	changes := newChangeLog()
	projects := startProjects(t, cl, ProjectsOptions{OnChange: changes.add})
	proj := changes.waitFor(t, "p", status(domain.ProjectRunning))
	qproj := changes.waitFor(t, "q", status(domain.ProjectRunning))
	ex := NewExecutor(cl, projects, WithKillGrace(time.Second), WithStateDir(t.TempDir()))
	t.Cleanup(ex.Close)
	eventually(t, 30*time.Second, func() string {
		if _, err := ex.Exec(t.Context(), shReq(proj, "true"), nil, nil); err != nil {
			return "kwok does not exec in the pod yet: " + domain.ErrorMessage(err)
		}
		return ""
	})

	var stdout lineWriter
	res, err := ex.Exec(t.Context(), shReq(proj, "echo hi"), &stdout, nil)
	if err != nil || res.ExitCode != 0 || stdout.String() != "hi\n" {
		t.Fatalf("exec as %s: %+v, %q, %v", user, res, stdout.String(), err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if res, err := ex.Exec(ctx, shReq(proj, "sleep 30"), nil, nil); err != nil || res.Signal != "SIGTERM" {
		t.Errorf("stopping a command as %s: %+v, %v; want SIGTERM", user, res, err)
	}

	// Exec needs pods/exec.
	for range 3 {
		if _, err := ex.Exec(t.Context(), shReq(qproj, "true"), nil, nil); domain.ErrorCode(err) != domain.EFORBIDDEN {
			t.Fatalf("exec without pods/exec: %v, want EFORBIDDEN", err)
		}
	}
	if s := cl.Breaker().State(); s != "closed" {
		t.Errorf("refusals opened the breaker: %s", s)
	}

	// Projects' secrets in Secrets beside their pods.
	secrets := cl.NewSecrets(projects, nil)
	now := time.Now().UTC()
	for _, name := range []string{"A", "B"} {
		if _, err := secrets.PutSecret(t.Context(), &domain.Secret{ProjectID: "p", Name: name, CreatedAt: now, UpdatedAt: now}, "v", 10, nil); err != nil {
			t.Fatalf("setting secret %s as %s: %v", name, user, err)
		}
	}
	if err := secrets.DeleteSecret(t.Context(), "p", "A", nil); err != nil {
		t.Errorf("deleting a secret as %s: %v", user, err)
	}
	if open, err := secrets.OpenSecrets(t.Context(), "p"); err != nil || len(open) != 1 || open[0].Name != "B" {
		t.Errorf("opening secrets as %s: %+v, %v", user, open, err)
	}
	// Without the secrets rule (q's namespace), FORBIDDEN, saying what rdev
	// needs.
	if _, err := secrets.FindSecrets(t.Context(), "q"); domain.ErrorCode(err) != domain.EFORBIDDEN || !strings.Contains(err.Error(), "get, create and update on secrets") {
		t.Errorf("listing secrets without the Role's secrets rule as %s: %v, want EFORBIDDEN", user, err)
	}

	// Nothing beyond the Role.
	client := cl.Client()
	zero := int64(0)
	for name, call := range map[string]func() error{
		"list secrets": func() error {
			_, err := client.CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{})
			return err
		},
		"watch secrets": func() error {
			w, err := client.CoreV1().Secrets(ns).Watch(t.Context(), metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		},
		"delete a secret": func() error {
			return client.CoreV1().Secrets(ns).Delete(t.Context(), SecretName("p"), metav1.DeleteOptions{})
		},
		"delete a pod": func() error {
			return client.CoreV1().Pods(ns).Delete(t.Context(), "p-0", metav1.DeleteOptions{GracePeriodSeconds: &zero})
		},
		"create a pod": func() error {
			p, _ := client.CoreV1().Pods(ns).Get(t.Context(), "p-0", metav1.GetOptions{})
			p = p.DeepCopy()
			p.ResourceVersion, p.Name = "", "p-1"
			_, err := client.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
			return err
		},
		"patch a pod": func() error {
			_, err := client.CoreV1().Pods(ns).Patch(t.Context(), "p-0", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		},
		"list pods elsewhere": func() error {
			_, err := client.CoreV1().Pods("default").List(t.Context(), metav1.ListOptions{})
			return err
		},
		"list config maps": func() error {
			_, err := client.CoreV1().ConfigMaps(ns).List(t.Context(), metav1.ListOptions{})
			return err
		},
	} {
		if err := call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as %s: %v, want Forbidden", name, user, err)
		}
	}
}
