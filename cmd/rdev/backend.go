package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/kube"
	"github.com/rdev-hq/rdev/infra/local"
)

// executorConfig says where projects come from and commands run: local
// directories and processes, or Kubernetes pods.
type executorConfig struct {
	Executor   string
	Kubeconfig string
	Context    string
	Namespaces []string
	LabelKey   string
	QPS        int
	Burst      int
	// ProjectRoot and StateDir are directories inside the containers.
	ProjectRoot string
	StateDir    string
	WarmIdle    time.Duration
	Sandbox     sandboxConfig
}

func (c *executorConfig) register(f *envFlags) {
	f.String(&c.Executor, "executor", "RDEV_EXECUTOR", "auto", "where commands run: local (processes in RDEV_WORKSPACE), kube (pods), or auto (kube when a kubeconfig or an in-cluster service account is present)")
	f.String(&c.Kubeconfig, "kubeconfig", "KUBECONFIG", "", "kubeconfig of the cluster (empty: the in-cluster service account, then ~/.kube/config)")
	f.String(&c.Context, "kube-context", "RDEV_KUBE_CONTEXT", "", "kubeconfig context to use (empty: its current one)")
	f.List(&c.Namespaces, "namespace", "RDEV_NAMESPACE", "namespaces whose labelled pods are projects (default: "+kube.DefaultNamespace+")")
	f.String(&c.LabelKey, "project-label", "RDEV_PROJECT_LABEL", kube.DefaultLabelKey, "pod label whose value is the project's name")
	f.Int(&c.QPS, "kube-qps", "RDEV_KUBE_QPS", kube.DefaultQPS, "requests per second to the Kubernetes API server")
	f.Int(&c.Burst, "kube-burst", "RDEV_KUBE_BURST", kube.DefaultBurst, "request burst to the Kubernetes API server")
	f.String(&c.ProjectRoot, "kube-project-root", "RDEV_KUBE_PROJECT_ROOT", "", "absolute directory in the containers that commands start in and workdir is relative to (empty: the container's working directory)")
	f.String(&c.StateDir, "kube-state-dir", "RDEV_KUBE_STATE_DIR", kube.DefaultStateDir, "writable directory in the containers where each command's process group is recorded, so cancel can kill it")
	c.Sandbox.register(f)
	f.Duration(&c.WarmIdle, "kube-warm-idle", "RDEV_KUBE_WARM_IDLE", kube.DefaultWarmIdle, "how long a project that ran a command keeps exec streams open and ready for its next commands (0: an exec per command)")
}

// kind resolves RDEV_EXECUTOR: "local" or "kube".
func (c *executorConfig) kind() (string, error) {
	switch c.Executor {
	case "local", "kube":
		return c.Executor, nil
	case "auto", "":
		if c.Kubeconfig != "" || kube.Detect().Source != kube.SourceNone {
			return "kube", nil
		}
		return "local", nil
	}
	return "", fmt.Errorf("RDEV_EXECUTOR: %q is not local, kube or auto", c.Executor)
}

// backend is where projects come from and commands run.
type backend struct {
	projects domain.ProjectRepository
	executor domain.Executor
	// checks report its health (beside the database's).
	checks []domain.HealthCheck
	// start starts watching projects, until ctx ends; nil if there is
	// nothing to watch.
	start func(ctx context.Context)
	// network is the network policy of projects an admin set none for;
	// networks says whether the executor holds policies (ExecRequest's
	// Network) other than ANY.
	network  domain.ProjectNetwork
	networks bool
	// where describes it for the log and the banner.
	where string
	// warning, if set, is said loudly at start and in the banner.
	warning string
	// close releases what it holds (nil if nothing).
	close func()
	// warmStreams counts the warm exec streams; nil without Kubernetes.
	warmStreams func() (ready, opening int)
	// breakerState reports the Kubernetes API server's circuit breaker
	// ("closed", "half-open", "open") of cluster; nil without one.
	breakerState func() string
	cluster      string
	// secrets returns the store of projects' secrets in the cluster,
	// recording audit entries in audit; nil without Kubernetes.
	secrets func(audit domain.AuditRepository) domain.SecretStore
}

// openBackend opens the configured backend. changed is told of every change
// to a project; wrap, if set, wraps a Kubernetes client's transport.
func openBackend(cfg serveConfig, log *slog.Logger, changed func(*domain.Project), wrap func(http.RoundTripper) http.RoundTripper) (backend, error) {
	kind, err := cfg.executor.kind()
	if err != nil {
		return backend{}, err
	}
	network, err := cfg.executor.Sandbox.network(kind)
	if err != nil {
		return backend{}, err
	}
	if kind == "local" {
		sandbox, off, err := cfg.executor.Sandbox.resolve(cfg.Workspace, cfg.store.DataDir)
		if err != nil {
			return backend{}, err
		}
		projects := local.NewProjects(cfg.Workspace)
		if err := projects.EnsureRoot(cfg.ExampleProject); err != nil {
			return backend{}, fmt.Errorf("workspace %s: %w", cfg.Workspace, err)
		}
		exec := local.NewExecutor(projects, local.WithKillGrace(cfg.commands.KillGrace),
			local.WithGroupsDir(filepath.Join(cfg.store.DataDir, "local-groups")), local.WithSandbox(sandbox))
		// Commands that were running when an earlier rdev died on this data
		// directory end INTERRUPTED when their leases expire; what they
		// started is ended here.
		if n, err := exec.KillOrphans(); err != nil {
			log.Warn("could not end the processes of commands an earlier rdev left running", "err", err)
		} else if n > 0 {
			log.Warn("ended the processes of commands an earlier rdev left running", "groups", n)
		}
		if err := exec.CheckNetwork(network); err != nil {
			return backend{}, fmt.Errorf("RDEV_LOCAL_NETWORK=%s: %s; set it to any to run commands with the host's network", cfg.executor.Sandbox.Network, domain.ErrorMessage(err))
		}
		b := backend{
			projects: projects,
			executor: exec,
			network:  network,
			networks: true,
			close:    func() { _ = projects.Close() },
			where:    "local processes in " + cfg.Workspace + sandboxWhere(sandbox, network),
		}
		if off {
			b.warning = sandboxOffWarning
			log.Warn(sandboxOffWarning)
		}
		if os.Geteuid() == 0 && sandbox.UID < 0 {
			log.Warn("commands run as rdev's user: RDEV_LOCAL_RUN_AS is not mapped in this user namespace", "run_as", cfg.executor.Sandbox.RunAs)
		}
		return b, nil
	}
	kubeconfig := cfg.executor.Kubeconfig
	if strings.ContainsRune(kubeconfig, os.PathListSeparator) {
		kubeconfig = "" // a KUBECONFIG list: the loading rules merge it
	}
	cluster, err := kube.NewCluster(kube.Config{
		Kubeconfig: kubeconfig, Context: cfg.executor.Context,
		Namespaces: cfg.executor.Namespaces, LabelKey: cfg.executor.LabelKey,
		QPS: float32(cfg.executor.QPS), Burst: cfg.executor.Burst, Logger: log,
		KillGrace: cfg.commands.KillGrace, ProjectRoot: cfg.executor.ProjectRoot, StateDir: cfg.executor.StateDir,
		WrapTransport: wrap,
	})
	if err != nil {
		return backend{}, fmt.Errorf("kubernetes: %s", domain.ErrorMessage(err))
	}
	projects, err := cluster.NewProjects(kube.ProjectsOptions{OnChange: changed, Logger: log})
	if err != nil {
		return backend{}, fmt.Errorf("kubernetes: %s", domain.ErrorMessage(err))
	}
	executor := kube.NewExecutor(cluster, projects, kube.WithWarmIdle(cfg.executor.WarmIdle))
	return backend{
		projects:    projects,
		executor:    executor,
		close:       executor.Close,
		warmStreams: executor.WarmStreams,
		checks: []domain.HealthCheck{
			domain.HealthCheckFunc(func(ctx context.Context) domain.ComponentHealth { return projectsHealth(ctx, projects) }),
			domain.HealthCheckFunc(func(context.Context) domain.ComponentHealth { return breakerHealth(cluster.Breaker().Health()) }),
		},
		start:        projects.Start,
		breakerState: cluster.Breaker().State,
		secrets:      func(audit domain.AuditRepository) domain.SecretStore { return cluster.NewSecrets(projects, audit) },
		cluster:      cluster.Host(),
		where:        fmt.Sprintf("pods labelled %s in namespaces %s of %s", cluster.LabelKey(), strings.Join(cluster.Namespaces(), ","), cluster.Host()),
	}, nil
}

// projectsHealth reports the pod cache: essential, as no project can be
// found before it has synced.
func projectsHealth(ctx context.Context, p *kube.Projects) domain.ComponentHealth {
	h := domain.ComponentHealth{Name: "projects", Status: domain.ComponentOK, Detail: "pod cache synced", Essential: true}
	if err := p.Ready(ctx); err != nil {
		h.Status, h.Detail = domain.ComponentDown, domain.ErrorMessage(err)
	}
	return h
}

// breakerHealth reports the Kubernetes API server through its circuit
// breaker. It is not essential: while it is down, commands fail with
// UNAVAILABLE, but every other query is served.
func breakerHealth(b kube.BreakerHealth) domain.ComponentHealth {
	h := domain.ComponentHealth{Name: "kubernetes", Since: b.Since, Detail: "API server " + b.Cluster}
	switch b.State {
	case "closed":
		h.Status = domain.ComponentOK
	case "half-open":
		h.Status, h.Detail = domain.ComponentDegraded, fmt.Sprintf("API server %s is recovering: its circuit breaker lets probes through", b.Cluster)
	default:
		h.Status, h.RetryIn = domain.ComponentDown, b.RetryIn
		h.Detail = fmt.Sprintf("API server %s is failing (%d failures in a row): its circuit breaker is open; retry in %d s",
			b.Cluster, b.ConsecutiveFailures, int(math.Ceil(max(b.RetryIn, time.Second).Seconds())))
	}
	return h
}
