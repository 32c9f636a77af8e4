package kube

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rdev-hq/rdev/domain"
)

func TestPodStatus(t *testing.T) {
	now := metav1.Now()
	ready := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	notReady := []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	for _, tt := range []struct {
		name string
		pod  corev1.Pod
		want domain.ProjectStatus
	}{
		{"NoPhase", corev1.Pod{}, domain.ProjectPending},
		{"Pending", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}, domain.ProjectPending},
		{"RunningReady", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: ready}}, domain.ProjectRunning},
		{"RunningNotReady", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: notReady}}, domain.ProjectNotReady},
		{"Succeeded", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}, domain.ProjectFailed},
		{"Failed", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}, domain.ProjectFailed},
		{"Unknown", corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodUnknown}}, domain.ProjectNotReady},
		{"Deleting", corev1.Pod{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &now},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: ready}}, domain.ProjectGone},
	} {
		if got := podStatus(&tt.pod); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestProjects_Fake(t *testing.T) {
	old := testPod("a", "dup-old", "dup")
	old.CreationTimestamp = metav1.NewTime(time.Now().Add(-time.Hour))
	newer := testPod("b", "dup-new", "dup")
	pending := testPod("a", "dup-pending", "dup")
	pending.Status = corev1.PodStatus{Phase: corev1.PodPending}
	pending.CreationTimestamp = metav1.NewTime(time.Now().Add(time.Hour))
	other := testPod("a", "other", "other")
	other.Labels["team"] = "x"
	other.Annotations = map[string]string{ContainerAnnotation: "missing"}
	invalid := testPod("a", "invalid", "Not_A_Label")
	unwatched := testPod("c", "unwatched", "unwatched")

	var mu sync.Mutex
	var changes []*domain.Project
	projects, client := mustFakeProjects(t, ProjectsOptions{
		Namespaces: []string{"a", "b"},
		Tombstone:  time.Hour,
		OnChange: func(p *domain.Project) {
			mu.Lock()
			changes = append(changes, p)
			mu.Unlock()
		},
	}, old, newer, pending, other, invalid, unwatched)
	ctx := t.Context()

	t.Run("DuplicatePicksNewestRunning", func(t *testing.T) {
		p, err := projects.FindProjectByID(ctx, "dup")
		if err != nil {
			t.Fatal(err)
		}
		if p.Namespace != "b" || p.Status != domain.ProjectRunning {
			t.Errorf("dup = %+v, want the newest running pod's (namespace b)", p)
		}
		tg, err := projects.Target("dup")
		if err != nil || tg != (Target{Namespace: "b", Pod: "dup-new", Container: "main"}) {
			t.Errorf("Target(dup) = %+v, %v", tg, err)
		}
	})
	t.Run("List", func(t *testing.T) {
		ps, err := projects.FindProjects(ctx, domain.ProjectFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		if diff := cmp.Diff([]string{"dup", "other"}, ids); diff != "" {
			t.Errorf("IDs (-want +got):\n%s", diff)
		}
		ps, _ = projects.FindProjects(ctx, domain.ProjectFilter{AfterID: "dup"})
		if len(ps) != 1 || ps[0].ID != "other" {
			t.Errorf("after dup: %v", ps)
		}
		ps, _ = projects.FindProjects(ctx, domain.ProjectFilter{Limit: 1})
		if len(ps) != 1 || ps[0].ID != "dup" {
			t.Errorf("limit 1: %v", ps)
		}
		ps, _ = projects.FindProjects(ctx, domain.ProjectFilter{Labels: map[string]string{"team": "x"}})
		if len(ps) != 1 || ps[0].ID != "other" {
			t.Errorf("team=x: %v", ps)
		}
	})
	t.Run("ErrNotFound", func(t *testing.T) {
		for _, id := range []string{"unwatched", "Not_A_Label", "nope", ""} {
			if _, err := projects.FindProjectByID(ctx, id); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Errorf("%q: %v, want ENOTFOUND", id, err)
			}
		}
		if _, err := projects.Target("other"); domain.ErrorCode(err) != domain.ENOTFOUND {
			t.Errorf("missing container: %v, want ENOTFOUND", err)
		}
	})
	t.Run("DeleteLeavesTombstone", func(t *testing.T) {
		if err := client.CoreV1().Pods("a").Delete(ctx, "other", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() string {
			p, err := projects.FindProjectByID(ctx, "other")
			if err != nil || p.Status != domain.ProjectGone {
				return "other is not GONE"
			}
			return ""
		})
		if _, err := projects.Target("other"); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Errorf("Target of a gone project: %v, want ECONFLICT", err)
		}
		ps, _ := projects.FindProjects(ctx, domain.ProjectFilter{Status: domain.ProjectGone})
		if len(ps) != 1 || ps[0].ID != "other" || ps[0].Labels["team"] != "x" {
			t.Errorf("GONE projects: %v", ps)
		}
		mu.Lock()
		defer mu.Unlock()
		last := changes[len(changes)-1]
		if last.ID != "other" || last.Status != domain.ProjectGone {
			t.Errorf("last change %+v, want other GONE", last)
		}
	})
	t.Run("ChangesOnlyOnVisibleChange", func(t *testing.T) {
		mu.Lock()
		n := len(changes)
		mu.Unlock()
		p, _ := client.CoreV1().Pods("b").Get(ctx, "dup-new", metav1.GetOptions{})
		p.Spec.ActiveDeadlineSeconds = new(int64(100)) // invisible to projects
		if _, err := client.CoreV1().Pods("b").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		p.Labels["tier"] = "dev"
		if _, err := client.CoreV1().Pods("b").Update(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() string {
			mu.Lock()
			defer mu.Unlock()
			if len(changes) < n+1 || changes[len(changes)-1].Labels["tier"] != "dev" {
				return "no change with the new label"
			}
			if len(changes) != n+1 {
				return "an invisible update was published"
			}
			return ""
		})
	})
}

func TestProjects_Ready(t *testing.T) {
	projects, err := NewProjects(fakeClient(), ProjectsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := projects.Ready(t.Context()); domain.ErrorCode(err) != domain.EUNAVAILABLE {
		t.Errorf("before start: %v, want EUNAVAILABLE", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	projects.Start(ctx)
	if err := projects.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	if err := projects.Ready(ctx); err != nil {
		t.Errorf("after sync: %v", err)
	}
}

func TestNewProjects_ErrInvalid(t *testing.T) {
	for _, o := range []ProjectsOptions{
		{Namespaces: []string{"Bad_NS"}},
		{LabelKey: "not a key"},
	} {
		if _, err := NewProjects(fakeClient(), o); domain.ErrorCode(err) != domain.EINVALID {
			t.Errorf("%+v: %v, want EINVALID", o, err)
		}
	}
}

// TestProjects_GoneBeforeTombstone: between the cache letting go of a
// project's last pod and its handler making the tombstone, the project
// reads as GONE, not as unknown.
func TestProjects_GoneBeforeTombstone(t *testing.T) {
	projects, _ := mustFakeProjects(t, ProjectsOptions{Namespaces: []string{"a"}, Tombstone: time.Hour})
	projects.mu.Lock()
	projects.last["web"] = &domain.Project{ID: "web", Namespace: "a", Status: domain.ProjectRunning}
	projects.mu.Unlock()
	p, err := projects.FindProjectByID(t.Context(), "web")
	if err != nil || p.Status != domain.ProjectGone || p.Namespace != "a" {
		t.Fatalf("FindProjectByID = %+v, %v; want web, GONE", p, err)
	}
	if _, err := projects.FindProjectByID(t.Context(), "never"); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("a project never seen: %v, want ENOTFOUND", err)
	}
}
