package kube

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/rdev-hq/rdev/domain"
)

// DefaultTombstone is how long a project whose pods are all gone is still
// reported, as GONE, before it is forgotten.
const DefaultTombstone = 5 * time.Minute

// projectIndex indexes pods by project ID (their label value).
const projectIndex = "rdev-project"

// ProjectsOptions configures Projects. Zero fields take the defaults named
// beside them.
type ProjectsOptions struct {
	// Namespaces are watched, one informer each (DefaultNamespace).
	Namespaces []string
	// LabelKey is the label whose value is the project ID (DefaultLabelKey).
	LabelKey string
	// OnChange, if set, is called with a project's new state whenever its
	// status, labels or annotations change: when it appears, changes, and
	// when its last pod goes (status GONE). Calls are serialized and made
	// from informer goroutines, so it must not block for long; it may call
	// the Projects' methods.
	OnChange func(*domain.Project)
	// Tombstone is how long a project that lost its last pod is still
	// found, as GONE (DefaultTombstone; negative: not at all).
	Tombstone time.Duration
	// Logger receives informer trouble; slog.Default() if nil.
	Logger *slog.Logger
}

// Projects is a domain.ProjectRepository over the pods labelled with the
// project label in the watched namespaces, read from shared informers'
// caches: no request reaches the API server per call.
//
// A project's ID is the label value, which must be a valid project ID (a
// DNS-1123 label; pods with other values are ignored). Its status follows
// its pod: phase Pending is PENDING; Running is RUNNING once the pod is Ready
// and NOT_READY before (phase Unknown too); Succeeded and Failed are FAILED;
// a pod being deleted is GONE. When several pods carry the same project ID
// (in one namespace or several), the one reported and used is, in order, the
// one with the best status (RUNNING, NOT_READY, PENDING, FAILED, GONE), then
// the newest, then the first by namespace and name. When the last pod of a
// project is gone, the project is still reported, as GONE, for the
// Tombstone period.
type Projects struct {
	labelKey  string
	onChange  func(*domain.Project)
	tombstone time.Duration
	log       *slog.Logger

	factories []informers.SharedInformerFactory
	informers []cache.SharedIndexInformer

	// notifyMu serializes recomputing and publishing changes.
	notifyMu sync.Mutex
	mu       sync.Mutex
	last     map[string]*domain.Project // last published state, per ID
	gone     map[string]tombstone
}

type tombstone struct {
	p     *domain.Project
	until time.Time
}

var _ domain.ProjectRepository = (*Projects)(nil)

// NewProjects returns the projects client can see. Nothing is watched until
// Start. It returns EINVALID for an invalid namespace or label key.
func NewProjects(client kubernetes.Interface, opts ProjectsOptions) (*Projects, error) {
	cfg, err := Config{Namespaces: opts.Namespaces, LabelKey: opts.LabelKey, Logger: opts.Logger}.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Tombstone == 0 {
		opts.Tombstone = DefaultTombstone
	}
	p := &Projects{
		labelKey:  cfg.LabelKey,
		onChange:  opts.OnChange,
		tombstone: opts.Tombstone,
		log:       cfg.Logger,
		last:      map[string]*domain.Project{},
		gone:      map[string]tombstone{},
	}
	for _, ns := range cfg.Namespaces {
		f := informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = cfg.LabelKey }))
		inf := f.Core().V1().Pods().Informer()
		if err := inf.AddIndexers(cache.Indexers{projectIndex: p.indexProject}); err != nil {
			return nil, errorf("pod index: %w", err)
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { p.changed(obj, nil) },
			UpdateFunc: func(old, obj any) { p.changed(obj, old) },
			DeleteFunc: func(obj any) { p.changed(obj, nil) },
		}); err != nil {
			return nil, errorf("pod event handler: %w", err)
		}
		if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
			p.log.Warn("watching project pods", "namespace", ns, "err", err)
		}); err != nil {
			return nil, errorf("pod watch error handler: %w", err)
		}
		p.factories = append(p.factories, f)
		p.informers = append(p.informers, inf)
	}
	return p, nil
}

// NewProjects returns the projects of the cluster's namespaces and label
// key; opts.Namespaces and opts.LabelKey are taken from the cluster. See
// the package-level NewProjects.
func (c *Cluster) NewProjects(opts ProjectsOptions) (*Projects, error) {
	opts.Namespaces, opts.LabelKey = c.Namespaces(), c.LabelKey()
	if opts.Logger == nil {
		opts.Logger = c.cfg.Logger
	}
	return NewProjects(c.client, opts)
}

// Start starts the informers; they stop when ctx ends. It does not wait for
// them to sync (see Ready and WaitForSync).
func (p *Projects) Start(ctx context.Context) {
	for _, f := range p.factories {
		f.Start(ctx.Done())
	}
	go func() {
		<-ctx.Done()
		for _, f := range p.factories {
			f.Shutdown()
		}
	}()
}

// HasSynced reports whether every informer has listed its namespace once.
func (p *Projects) HasSynced() bool {
	for _, inf := range p.informers {
		if !inf.HasSynced() {
			return false
		}
	}
	return true
}

// Ready returns nil once the caches have synced, for a readiness probe, and
// EUNAVAILABLE before.
func (p *Projects) Ready(context.Context) error {
	if !p.HasSynced() {
		return domain.Errorf(domain.EUNAVAILABLE, "the Kubernetes pod cache has not synced yet")
	}
	return nil
}

// WaitForSync blocks until the caches have synced or ctx ends; then it
// returns EUNAVAILABLE.
func (p *Projects) WaitForSync(ctx context.Context) error {
	syncs := make([]cache.InformerSynced, len(p.informers))
	for i, inf := range p.informers {
		syncs[i] = inf.HasSynced
	}
	if !cache.WaitForCacheSync(ctx.Done(), syncs...) {
		return domain.Errorf(domain.EUNAVAILABLE, "the Kubernetes pod cache did not sync: %v", context.Cause(ctx))
	}
	return nil
}

// FindProjectByID returns the project from the cache. It returns ENOTFOUND
// when no pod carries id (and no tombstone is left), and ctx's error if it
// has ended.
func (p *Projects) FindProjectByID(ctx context.Context, id string) (*domain.Project, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if pr, _ := p.lookup(id); pr != nil {
		return pr, nil
	}
	return nil, notFound(id)
}

// FindProjects returns the projects that match f, sorted by ID: those after
// f.AfterID, at most f.Limit (0 or less: no limit). Projects kept as
// tombstones are included, as GONE. It returns ctx's error if it has ended.
func (p *Projects) FindProjects(ctx context.Context, f domain.ProjectFilter) ([]*domain.Project, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, inf := range p.informers {
		for _, id := range inf.GetIndexer().ListIndexFuncValues(projectIndex) {
			ids[id] = true
		}
	}
	p.mu.Lock()
	now := time.Now()
	for id, t := range p.gone {
		if now.Before(t.until) {
			ids[id] = true
		}
	}
	p.mu.Unlock()
	out := []*domain.Project{}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		if f.Limit > 0 && len(out) >= f.Limit {
			break
		}
		if id <= f.AfterID {
			continue
		}
		if pr, _ := p.lookup(id); pr != nil && f.Matches(pr) {
			out = append(out, pr)
		}
	}
	return out, nil
}

// lookup returns the project id as the cache has it now, with the pod it
// comes from (nil for a tombstone), or nils.
func (p *Projects) lookup(id string) (*domain.Project, *corev1.Pod) {
	if domain.ValidateProjectID(id) != nil {
		return nil, nil
	}
	var best *corev1.Pod
	for _, inf := range p.informers {
		objs, err := inf.GetIndexer().ByIndex(projectIndex, id)
		if err != nil {
			continue
		}
		for _, o := range objs {
			if pod, ok := o.(*corev1.Pod); ok && better(pod, best) {
				best = pod
			}
		}
	}
	if best != nil {
		return p.project(id, best), best
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.gone[id]
	if !ok {
		if last := p.last[id]; last != nil {
			// The cache has let go of the project's last pod, and its
			// handler has not yet turned it into a tombstone: it is gone.
			gone := clone(last)
			gone.Status = domain.ProjectGone
			return gone, nil
		}
		return nil, nil
	}
	if time.Now().After(t.until) {
		delete(p.gone, id)
		return nil, nil
	}
	return clone(t.p), nil
}

func (p *Projects) project(id string, pod *corev1.Pod) *domain.Project {
	return &domain.Project{
		ID:          id,
		Namespace:   pod.Namespace,
		Status:      podStatus(pod),
		Labels:      copyMap(pod.Labels),
		Annotations: copyMap(pod.Annotations),
		CreatedAt:   pod.CreationTimestamp.UTC(),
	}
}

// indexProject files a pod under its project ID.
func (p *Projects) indexProject(obj any) ([]string, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	if id := pod.Labels[p.labelKey]; domain.ValidateProjectID(id) == nil {
		return []string{id}, nil
	}
	return nil, nil
}

// changed recomputes the projects of a pod that was added, updated or
// deleted (and of its old labels) and publishes what changed.
func (p *Projects) changed(obj, old any) {
	ids := map[string]bool{}
	for _, o := range []any{obj, old} {
		if d, ok := o.(cache.DeletedFinalStateUnknown); ok {
			o = d.Obj
		}
		if pod, ok := o.(*corev1.Pod); ok {
			if id := pod.Labels[p.labelKey]; domain.ValidateProjectID(id) == nil {
				ids[id] = true
			}
		}
	}
	p.notifyMu.Lock()
	defer p.notifyMu.Unlock()
	for id := range ids {
		p.recompute(id)
	}
}

func (p *Projects) recompute(id string) {
	cur, pod := p.lookup(id)
	p.mu.Lock()
	prev := p.last[id]
	switch {
	case pod != nil:
		delete(p.gone, id)
		p.last[id] = cur
	case prev != nil:
		cur = clone(prev)
		cur.Status = domain.ProjectGone
		delete(p.last, id)
		if p.tombstone > 0 {
			p.gone[id] = tombstone{p: clone(cur), until: time.Now().Add(p.tombstone)}
		}
	default:
		// Gone already (a repeated delete): nothing new to say.
		cur = nil
	}
	p.mu.Unlock()
	if cur == nil || p.onChange == nil || sameState(prev, cur) {
		return
	}
	p.onChange(clone(cur))
}

// sameState reports whether nothing a subscriber sees changed.
func sameState(a, b *domain.Project) bool {
	return a != nil && b != nil && a.Status == b.Status && a.Namespace == b.Namespace &&
		maps.Equal(a.Labels, b.Labels) && maps.Equal(a.Annotations, b.Annotations)
}

func notFound(id string) error {
	return domain.Errorf(domain.ENOTFOUND, "project %q not found", domain.Clip(id))
}
