package kube

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rdev-hq/rdev/domain"
)

// changeLog collects what OnChange reports.
type changeLog struct {
	mu      sync.Mutex
	all     []*domain.Project
	changed chan struct{}
}

func newChangeLog() *changeLog { return &changeLog{changed: make(chan struct{})} }

func (c *changeLog) add(p *domain.Project) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all = append(c.all, p)
	close(c.changed)
	c.changed = make(chan struct{})
}

// waitFor waits for a change of project id that ok accepts, and returns it.
func (c *changeLog) waitFor(t testing.TB, id string, ok func(*domain.Project) bool) *domain.Project {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		all, changed := c.all, c.changed
		c.mu.Unlock()
		for _, p := range all {
			if p.ID == id && ok(p) {
				return p
			}
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no such change of %s within 30 s; changes: %v", id, all)
			return nil
		}
	}
}

func status(s domain.ProjectStatus) func(*domain.Project) bool {
	return func(p *domain.Project) bool { return p.Status == s }
}

// startProjects returns synced Projects over the namespaces of a cluster
// reached with rc.
func startProjects(t testing.TB, cl *Cluster, opts ProjectsOptions) *Projects {
	t.Helper()
	projects, err := cl.NewProjects(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	projects.Start(ctx)
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if err := projects.WaitForSync(sctx); err != nil {
		t.Fatal(err)
	}
	return projects
}

func TestProjects_Cluster(t *testing.T) {
	t.Parallel()
	c := mustCluster(t)
	ns, other := c.namespace(t), c.namespace(t)
	cl, err := NewClusterForConfig(c.rest, Config{Namespaces: []string{ns}})
	if err != nil {
		t.Fatal(err)
	}
	changes := newChangeLog()
	c.pod(t, ns, "alpha-pod", map[string]string{DefaultLabelKey: "alpha", "team": "a"}, map[string]string{"note": "x"})
	c.pod(t, ns, "plain-pod", map[string]string{"team": "a"}, nil)
	c.pod(t, ns, "bad-pod", map[string]string{DefaultLabelKey: "Not_Valid"}, nil)
	c.pod(t, other, "beta-pod", map[string]string{DefaultLabelKey: "beta"}, nil)
	projects := startProjects(t, cl, ProjectsOptions{OnChange: changes.add})
	ctx := t.Context()

	// kwok's stages make the pod Running and Ready.
	p := changes.waitFor(t, "alpha", status(domain.ProjectRunning))
	if p.Namespace != ns || p.Labels["team"] != "a" || p.Annotations["note"] != "x" || p.CreatedAt.IsZero() {
		t.Errorf("alpha = %+v", p)
	}
	ps, err := projects.FindProjects(ctx, domain.ProjectFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].ID != "alpha" || ps[0].Status != domain.ProjectRunning {
		t.Fatalf("FindProjects = %v, want only alpha, RUNNING (not the unlabelled pod, nor the other namespace's)", ps)
	}
	if _, err := projects.FindProjectByID(ctx, "beta"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("beta (another namespace): %v, want ENOTFOUND", err)
	}
	if tg, err := projects.Target("alpha"); err != nil || tg != (Target{ns, "alpha-pod", "main"}) {
		t.Errorf("Target = %+v, %v", tg, err)
	}

	// An annotation names the container.
	patch(t, c, ns, "alpha-pod", map[string]any{"metadata": map[string]any{"annotations": map[string]string{ContainerAnnotation: "side"}}})
	changes.waitFor(t, "alpha", func(p *domain.Project) bool { return p.Annotations[ContainerAnnotation] == "side" })
	if tg, err := projects.Target("alpha"); err != nil || tg.Container != "side" {
		t.Errorf("Target with annotation = %+v, %v", tg, err)
	}
	patch(t, c, ns, "alpha-pod", map[string]any{"metadata": map[string]any{"annotations": map[string]string{ContainerAnnotation: "nope"}}})
	eventually(t, 10*time.Second, func() string {
		if _, err := projects.Target("alpha"); domain.ErrorCode(err) != domain.ENOTFOUND {
			return "Target with a missing container: " + domain.ErrorMessage(err)
		}
		return ""
	})

	// Deleted: GONE, for subscribers and for reads.
	zero := int64(0)
	if err := c.client.CoreV1().Pods(ns).Delete(ctx, "alpha-pod", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	changes.waitFor(t, "alpha", status(domain.ProjectGone))
	if p, err := projects.FindProjectByID(ctx, "alpha"); err != nil || p.Status != domain.ProjectGone {
		t.Errorf("after delete: %+v, %v; want GONE", p, err)
	}
	if _, err := projects.Target("alpha"); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Errorf("Target after delete: %v, want ECONFLICT", err)
	}
}

func patch(t *testing.T, c *testCluster, ns, name string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if _, err := c.client.CoreV1().Pods(ns).Patch(t.Context(), name, types.MergePatchType, b, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}
