package kube

import (
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/rdev-hq/rdev/domain"
)

// Target is where a project's commands run.
type Target struct {
	Namespace string
	Pod       string
	Container string
}

// Target returns the pod and container that commands of project id run in.
// It returns ENOTFOUND for an unknown project or a container that the pod
// does not have, and ECONFLICT when the project is not RUNNING.
func (p *Projects) Target(id string) (Target, error) {
	pr, pod := p.lookup(id)
	switch {
	case pr == nil:
		return Target{}, notFound(id)
	case pod == nil || pr.Status != domain.ProjectRunning:
		return Target{}, domain.Errorf(domain.ECONFLICT, "project %s is %s", id, pr.Status)
	}
	t := Target{Namespace: pod.Namespace, Pod: pod.Name}
	if name, ok := pod.Annotations[ContainerAnnotation]; ok {
		if !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == name }) {
			return Target{}, domain.Errorf(domain.ENOTFOUND, "project %s: container %q (annotation %s) not found in pod %s/%s",
				id, domain.Clip(name), ContainerAnnotation, pod.Namespace, pod.Name)
		}
		t.Container = name
	} else if len(pod.Spec.Containers) > 0 {
		t.Container = pod.Spec.Containers[0].Name
	} else {
		return Target{}, domain.Errorf(domain.ENOTFOUND, "project %s: pod %s/%s has no container", id, pod.Namespace, pod.Name)
	}
	return t, nil
}

// podStatus maps a pod's phase and readiness to a project status.
func podStatus(pod *corev1.Pod) domain.ProjectStatus {
	if pod.DeletionTimestamp != nil {
		return domain.ProjectGone
	}
	switch pod.Status.Phase {
	case corev1.PodPending, "":
		return domain.ProjectPending
	case corev1.PodRunning:
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return domain.ProjectRunning
			}
		}
		return domain.ProjectNotReady
	case corev1.PodSucceeded, corev1.PodFailed:
		return domain.ProjectFailed
	case corev1.PodUnknown:
		return domain.ProjectNotReady
	}
	return domain.ProjectNotReady
}

// statusRank orders statuses for choosing among pods of one project.
var statusRank = map[domain.ProjectStatus]int{
	domain.ProjectRunning: 5, domain.ProjectNotReady: 4, domain.ProjectPending: 3,
	domain.ProjectFailed: 2, domain.ProjectGone: 1,
}

// better reports whether pod should represent its project rather than cur.
func better(pod, cur *corev1.Pod) bool {
	if cur == nil {
		return true
	}
	if a, b := statusRank[podStatus(pod)], statusRank[podStatus(cur)]; a != b {
		return a > b
	}
	if !pod.CreationTimestamp.Equal(&cur.CreationTimestamp) {
		return cur.CreationTimestamp.Before(&pod.CreationTimestamp)
	}
	return strings.Compare(pod.Namespace+"/"+pod.Name, cur.Namespace+"/"+cur.Name) < 0
}

func clone(p *domain.Project) *domain.Project {
	c := *p
	c.Labels, c.Annotations = copyMap(p.Labels), copyMap(p.Annotations)
	return &c
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	maps.Copy(out, m)
	return out
}
