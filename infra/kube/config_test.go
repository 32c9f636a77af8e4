package kube

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/rest"

	"github.com/rdev-hq/rdev/domain"
)

func TestDetect(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "config")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBECONFIG", filepath.Join(dir, "missing")+string(filepath.ListSeparator)+kc)
	if d := Detect(); d != (Detection{Source: SourceKubeconfig, Path: kc}) {
		t.Errorf("KUBECONFIG: %+v", d)
	}
	t.Setenv("KUBECONFIG", filepath.Join(dir, "missing"))
	if d := Detect(); d.Source != SourceNone {
		t.Errorf("missing KUBECONFIG: %+v, want none", d)
	}
	t.Setenv("KUBECONFIG", "")
	if d := Detect(); d.Source != SourceNone {
		t.Errorf("nothing: %+v, want none", d)
	}
}

func TestNewCluster_ErrInvalid(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	bad := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(bad, []byte("not: [yaml"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]Config{
		"MissingFile": {Kubeconfig: filepath.Join(t.TempDir(), "none")},
		"BadFile":     {Kubeconfig: bad},
	} {
		if _, err := NewCluster(cfg); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
	for name, cfg := range map[string]Config{
		"Namespace":           {Namespaces: []string{"ok", "Not OK"}},
		"LabelKey":            {LabelKey: "a/b/c"},
		"RelativeProjectRoot": {ProjectRoot: "work"},
		"RelativeStateDir":    {StateDir: "tmp"},
	} {
		if _, err := NewClusterForConfig(&rest.Config{Host: "https://127.0.0.1:1"}, cfg); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%s: %v, want EINVALID", name, err)
		}
	}
}

func TestNewClusterForConfig_Defaults(t *testing.T) {
	rc := &rest.Config{Host: "https://127.0.0.1:1", Timeout: 5}
	cl, err := NewClusterForConfig(rc, Config{Namespaces: ParseNamespaces(" a, b ,,a ")})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b"}, cl.Namespaces()); diff != "" {
		t.Errorf("namespaces (-want +got):\n%s", diff)
	}
	if cl.LabelKey() != DefaultLabelKey || cl.rest.QPS != DefaultQPS || cl.rest.Burst != DefaultBurst || cl.rest.Timeout != 0 {
		t.Errorf("defaults not applied: %+v", cl.rest)
	}
	if rc.WrapTransport != nil || rc.QPS != 0 {
		t.Error("the caller's config was changed")
	}
	if cl.Breaker().State() != "closed" {
		t.Errorf("new breaker %s", cl.Breaker().State())
	}
}
