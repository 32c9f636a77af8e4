// Package deploy holds rdev's Kubernetes manifests; its test renders every
// kustomization and has a real API server accept each object.
package deploy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rdev-hq/rdev/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.StopKubeCluster()
	os.Exit(code)
}

// kustomizations are every directory a user may apply, and how many objects
// each renders (a check that nothing silently drops out).
var kustomizations = map[string]int{
	"base":             10,
	"examples/project": 2,
	"overlays/dev":     19,
}

// render runs `kubectl kustomize dir` and decodes the objects.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		kubectl = "kubectl"
	}
	path, err := exec.LookPath(kubectl)
	testenv.RequireService(t, "kubectl (for `kubectl kustomize`)", err)
	out, err := exec.CommandContext(t.Context(), path, "kustomize", dir).Output() //nolint:gosec // the test's own kubectl and directory
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, ee.Stderr)
		}
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096)
	var objs []*unstructured.Unstructured
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("decoding the output of kubectl kustomize %s: %v", dir, err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, &u)
		}
	}
	return objs
}

// TestManifests_Render builds every kustomization and checks what a
// production deployment relies on: restricted Pod Security on the namespace,
// hardened containers with probes and resources, two replicas with a
// disruption budget, and default-deny network policies.
func TestManifests_Render(t *testing.T) {
	for dir, want := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			if len(objs) != want {
				t.Errorf("%d objects, want %d", len(objs), want)
			}
			for _, o := range objs {
				if o.GetKind() != "Namespace" && o.GetNamespace() != "rdev" {
					t.Errorf("%s/%s is in namespace %q, want rdev", o.GetKind(), o.GetName(), o.GetNamespace())
				}
				if spec, ok := podSpec(t, o); ok {
					checkHardened(t, o.GetKind()+"/"+o.GetName(), spec)
				}
			}
		})
	}
	t.Run("production", func(t *testing.T) {
		byKind := map[string]*unstructured.Unstructured{}
		for _, o := range render(t, "base") {
			byKind[o.GetKind()+"/"+o.GetName()] = o
		}
		ns := byKind["Namespace/rdev"]
		if ns == nil || ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
			t.Errorf("namespace rdev does not enforce the restricted Pod Security level: %v", ns)
		}
		if d := byKind["Deployment/rdev"]; d == nil {
			t.Error("no Deployment rdev")
		} else {
			if r := number(d, "spec", "replicas"); r != 2 {
				t.Errorf("Deployment rdev has %v replicas, want 2", r)
			}
			checkKeyFromSecret(t, d, "RDEV_SECRETS_KEY_FILE", "rdev-secrets-key")
			checkKeyFromSecret(t, d, "RDEV_AUDIT_KEY_FILE", "rdev-audit-key")
		}
		if p := byKind["PodDisruptionBudget/rdev"]; p == nil {
			t.Error("no PodDisruptionBudget")
		} else if m := number(p, "spec", "minAvailable"); m != 1 {
			t.Errorf("PodDisruptionBudget minAvailable %v, want 1", m)
		}
		np := byKind["NetworkPolicy/default-deny"]
		if np == nil {
			t.Fatal("no default-deny NetworkPolicy")
		}
		sel, _, _ := unstructured.NestedMap(np.Object, "spec", "podSelector")
		types, _, _ := unstructured.NestedStringSlice(np.Object, "spec", "policyTypes")
		_, hasIngress, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
		_, hasEgress, _ := unstructured.NestedSlice(np.Object, "spec", "egress")
		if len(sel) != 0 || strings.Join(types, ",") != "Ingress,Egress" || hasIngress || hasEgress {
			t.Errorf("default-deny selects %v with types %v, rules %v/%v: want every pod, both directions, no rules", sel, types, hasIngress, hasEgress)
		}
	})
}

// checkKeyFromSecret checks that the rdev container of Deployment d reads
// the key file variable from a read-only mount of the Secret secret: keys
// stay out of the database, the image and the ConfigMap.
func checkKeyFromSecret(t *testing.T, d *unstructured.Unstructured, variable, secret string) {
	t.Helper()
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	volumes, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
	if len(containers) == 0 {
		t.Fatal("Deployment rdev has no container")
	}
	c := containers[0].(map[string]any)
	path := ""
	envs, _, _ := unstructured.NestedSlice(c, "env")
	for _, e := range envs {
		if e := e.(map[string]any); e["name"] == variable {
			path, _ = e["value"].(string)
		}
	}
	if path == "" {
		t.Errorf("the rdev container does not set %s", variable)
		return
	}
	mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
	for _, m := range mounts {
		m := m.(map[string]any)
		dir, _ := m["mountPath"].(string)
		if !strings.HasPrefix(path, dir+"/") {
			continue
		}
		if m["readOnly"] != true {
			t.Errorf("%s is mounted writable", dir)
		}
		for _, v := range volumes {
			if v := v.(map[string]any); v["name"] == m["name"] {
				if name, _, _ := unstructured.NestedString(v, "secret", "secretName"); name != secret {
					t.Errorf("%s (%s) comes from %v, want the Secret %s", variable, path, v, secret)
				}
				return
			}
		}
	}
	t.Errorf("%s=%s is on no mounted volume", variable, path)
}

// number returns the number at fields of o, -1 if there is none (decoded
// YAML holds numbers as float64 or int64).
func number(o *unstructured.Unstructured, fields ...string) float64 {
	v, ok, _ := unstructured.NestedFieldNoCopy(o.Object, fields...)
	if !ok {
		return -1
	}
	switch n := v.(type) {
	case float64:
		return n
	case int64:
		return float64(n)
	}
	return -1
}

// podSpec returns the pod spec of a Pod or of a workload's template.
func podSpec(t *testing.T, o *unstructured.Unstructured) (*corev1.PodSpec, bool) {
	t.Helper()
	var fields []string
	switch o.GetKind() {
	case "Pod":
		fields = []string{"spec"}
	case "Deployment", "StatefulSet", "DaemonSet", "Job":
		fields = []string{"spec", "template", "spec"}
	default:
		return nil, false
	}
	m, _, err := unstructured.NestedMap(o.Object, fields...)
	if err != nil {
		t.Fatal(err)
	}
	var spec corev1.PodSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, &spec); err != nil {
		t.Fatalf("%s/%s: %v", o.GetKind(), o.GetName(), err)
	}
	return &spec, true
}

func checkHardened(t *testing.T, name string, spec *corev1.PodSpec) {
	t.Helper()
	psc := spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: the pod must run as non-root with the RuntimeDefault seccomp profile", name)
	}
	for _, c := range spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("%s, container %s: privilege escalation must be off and every capability dropped", name, c.Name)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s, container %s: memory request and limit are required", name, c.Name)
		}
		if strings.HasPrefix(name, "Deployment/") {
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s, container %s: the root filesystem must be read-only", name, c.Name)
			}
			if c.ReadinessProbe == nil || c.LivenessProbe == nil {
				t.Errorf("%s, container %s: readiness and liveness probes are required", name, c.Name)
			}
		}
	}
}

// TestManifests_ServerDryRun has a real API server accept every object of
// every kustomization (server-side dry run), in a namespace of its own that
// enforces the restricted Pod Security level; the pods of each workload
// template are dry-run too, since Pod Security admission judges pods, and a
// privileged pod is refused, which shows the level is enforced.
func TestManifests_ServerDryRun(t *testing.T) {
	kubeconfig, _ := testenv.KubeCluster(t)
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(rc)
	dyn := dynamic.NewForConfigOrDie(rc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(rc)))
	ctx := t.Context()

	for dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			ns := "rdev-" + randomSuffix(t)
			rename(objs, "rdev", ns)
			var nsObj *unstructured.Unstructured
			for _, o := range objs {
				if o.GetKind() == "Namespace" {
					nsObj = o
				}
			}
			// Objects in a namespace can be dry-run only once it exists, so
			// it is created for real: the manifest's own when it has one.
			if nsObj == nil {
				nsObj = &unstructured.Unstructured{Object: map[string]any{
					"apiVersion": "v1", "kind": "Namespace",
					"metadata": map[string]any{"name": ns, "labels": map[string]any{"pod-security.kubernetes.io/enforce": "restricted"}},
				}}
			}
			if _, err := dyn.Resource(corev1.SchemeGroupVersion.WithResource("namespaces")).Create(ctx, nsObj, metav1.CreateOptions{}); err != nil {
				t.Fatalf("creating namespace %s: %v", ns, err)
			}
			t.Cleanup(func() {
				_ = client.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), ns, metav1.DeleteOptions{})
			})

			for _, o := range objs {
				if o == nsObj {
					continue
				}
				dryRunCreate(ctx, t, dyn, mapper, o)
				if spec, ok := podSpec(t, o); ok && o.GetKind() != "Pod" {
					pod := &corev1.Pod{
						TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
						ObjectMeta: metav1.ObjectMeta{Name: o.GetName() + "-template", Namespace: ns},
						Spec:       *spec,
					}
					if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
						t.Errorf("a pod of %s/%s's template: %v", o.GetKind(), o.GetName(), err)
					}
				}
			}

			// The control: a privileged pod must be refused here.
			privileged := true
			bad := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "privileged", Namespace: ns},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "x", Image: "busybox", SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
				}}},
			}
			_, err := client.CoreV1().Pods(ns).Create(ctx, bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
				t.Errorf("a privileged pod in %s: %v; want it refused by PodSecurity", ns, err)
			}
		})
	}
}

func dryRunCreate(ctx context.Context, t *testing.T, dyn dynamic.Interface, mapper meta.RESTMapper, o *unstructured.Unstructured) {
	t.Helper()
	gvk := o.GroupVersionKind()
	m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Errorf("%s %s: the API server does not serve it: %v", gvk, o.GetName(), err)
		return
	}
	var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
	}
	if _, err := ri.Create(ctx, o, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("%s %s/%s refused: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
	}
}

// rename moves every object from namespace from to namespace to: the
// namespace itself, its objects, and references such as a RoleBinding's
// subjects and URLs that name the namespace's services.
func rename(objs []*unstructured.Unstructured, from, to string) {
	for _, o := range objs {
		if o.GetKind() == "Namespace" && o.GetName() == from {
			o.SetName(to)
		}
		if o.GetNamespace() == from {
			o.SetNamespace(to)
		}
		if subjects, ok, _ := unstructured.NestedSlice(o.Object, "subjects"); ok {
			for _, s := range subjects {
				if m, ok := s.(map[string]any); ok && m["namespace"] == from {
					m["namespace"] = to
				}
			}
			_ = unstructured.SetNestedSlice(o.Object, subjects, "subjects")
		}
	}
}

func randomSuffix(t *testing.T) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}
