// Package kube serves Kubernetes pods as rdev projects and runs commands in
// them: Projects discovers labelled pods through shared informers (reads come
// from their cache), Executor runs commands through the pods' exec
// subresource (WebSocket first, SPDY as the fallback), and a Breaker in front
// of the API server turns its failures into UNAVAILABLE at once.
package kube

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/rdev-hq/rdev/domain"
)

// The defaults of Config.
const (
	// DefaultLabelKey is the pod label whose value is the project ID.
	DefaultLabelKey = "rdev.dev/project"
	// DefaultNamespace is watched when no namespace is configured.
	DefaultNamespace = "default"
	// DefaultQPS and DefaultBurst limit the client's request rate.
	DefaultQPS   = 20
	DefaultBurst = 40
	// DefaultKillGrace is how long a stopped command gets between SIGTERM
	// and SIGKILL.
	DefaultKillGrace = 5 * time.Second
	// DefaultStateDir is the directory, inside the containers, where the
	// exec wrapper records the process group of each command.
	DefaultStateDir = "/tmp"
	// ContainerAnnotation names the container commands run in; without it,
	// the pod's first container.
	ContainerAnnotation = "rdev.dev/container"
)

// Config says which cluster to talk to and how.
type Config struct {
	// Kubeconfig is the path of a kubeconfig file. Empty: the in-cluster
	// configuration when rdev runs in a pod, else the standard loading rules
	// (KUBECONFIG, then ~/.kube/config).
	Kubeconfig string
	// Context is the kubeconfig context to use; empty for its current one.
	Context string
	// Namespaces are watched for projects; empty means DefaultNamespace.
	Namespaces []string
	// LabelKey is the pod label whose value is the project ID.
	LabelKey string
	// QPS and Burst limit the client's request rate (DefaultQPS,
	// DefaultBurst when zero).
	QPS   float32
	Burst int
	// Breaker configures the circuit breaker in front of the API server.
	Breaker BreakerSettings
	// KillGrace, ProjectRoot and StateDir are the defaults of the
	// executors made for this cluster (see WithKillGrace, WithProjectRoot
	// and WithStateDir); zero values take those options' defaults.
	KillGrace   time.Duration
	ProjectRoot string
	StateDir    string
	// Logger receives breaker transitions and informer trouble;
	// slog.Default() if nil.
	Logger *slog.Logger
	// WrapTransport, if set, wraps the client's transport outside the
	// Breaker, so it sees every call, the refused ones too (tracing).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// Cluster is one Kubernetes API server: the client configuration rdev uses
// for it, with the Breaker in its transport, and a clientset built from it.
type Cluster struct {
	rest    *rest.Config
	client  kubernetes.Interface
	breaker *Breaker
	cfg     Config
}

// NewCluster loads the client configuration that cfg names and returns the
// cluster. It does not contact the API server, so rdev starts (and reports
// not ready) while the server is down. It returns EINVALID for a
// configuration that cannot be loaded or an invalid namespace or label key.
func NewCluster(cfg Config) (*Cluster, error) {
	rc, err := loadRESTConfig(cfg)
	if err != nil {
		return nil, err
	}
	return NewClusterForConfig(rc, cfg)
}

// NewClusterForConfig returns the cluster that rc reaches, with cfg's
// settings other than Kubeconfig and Context. rc is copied, not changed. It
// returns EINVALID for an invalid namespace or label key.
func NewClusterForConfig(rc *rest.Config, cfg Config) (*Cluster, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = cfg.QPS, cfg.Burst
	if rc.UserAgent == "" {
		rc.UserAgent = "rdev"
	}
	// Exec streams last as long as their commands: no whole-request timeout.
	rc.Timeout = 0
	b := NewBreaker(rc.Host, cfg.Breaker, cfg.Logger)
	prev := rc.WrapTransport
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		if prev != nil {
			rt = prev(rt)
		}
		rt = b.Wrap(rt)
		if cfg.WrapTransport != nil {
			rt = cfg.WrapTransport(rt)
		}
		return rt
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "kubernetes client configuration: %v", err)
	}
	return &Cluster{rest: rc, client: client, breaker: b, cfg: cfg}, nil
}

// Client returns the cluster's clientset (behind the breaker).
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Breaker returns the circuit breaker in front of the API server.
func (c *Cluster) Breaker() *Breaker { return c.breaker }

// Host returns the API server's address.
func (c *Cluster) Host() string { return c.rest.Host }

// Namespaces returns the namespaces watched for projects.
func (c *Cluster) Namespaces() []string { return append([]string(nil), c.cfg.Namespaces...) }

// LabelKey returns the label that names a pod's project.
func (c *Cluster) LabelKey() string { return c.cfg.LabelKey }

func (cfg Config) withDefaults() (Config, error) {
	for _, d := range []struct{ name, dir string }{{"project root", cfg.ProjectRoot}, {"state directory", cfg.StateDir}} {
		if d.dir != "" && !path.IsAbs(d.dir) {
			return cfg, domain.Errorf(domain.EINVALID, "%s %q: must be an absolute path inside the containers", d.name, domain.Clip(d.dir))
		}
	}
	if cfg.LabelKey == "" {
		cfg.LabelKey = DefaultLabelKey
	}
	if errs := validation.IsQualifiedName(cfg.LabelKey); len(errs) > 0 {
		return cfg, domain.Errorf(domain.EINVALID, "label key %q: %s", domain.Clip(cfg.LabelKey), strings.Join(errs, "; "))
	}
	seen := map[string]bool{}
	var nss []string
	for _, ns := range cfg.Namespaces {
		ns = strings.TrimSpace(ns)
		if ns == "" || seen[ns] {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return cfg, domain.Errorf(domain.EINVALID, "namespace %q: %s", domain.Clip(ns), strings.Join(errs, "; "))
		}
		seen[ns] = true
		nss = append(nss, ns)
	}
	if len(nss) == 0 {
		nss = []string{DefaultNamespace}
	}
	cfg.Namespaces = nss
	if cfg.QPS <= 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// ParseNamespaces splits a comma-separated list (RDEV_NAMESPACE), dropping
// blanks.
func ParseNamespaces(s string) []string {
	var out []string
	for ns := range strings.SplitSeq(s, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}

func loadRESTConfig(cfg Config) (*rest.Config, error) {
	if cfg.Kubeconfig == "" && cfg.Context == "" {
		if d := Detect(); d.Source == SourceInCluster {
			rc, err := rest.InClusterConfig()
			if err != nil {
				return nil, domain.Errorf(domain.EINVALID, "in-cluster kubernetes configuration: %v", err)
			}
			return rc, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if cfg.Kubeconfig != "" {
		rules.ExplicitPath = cfg.Kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, domain.Errorf(domain.EINVALID, "kubeconfig: %v", err)
	}
	return rc, nil
}

// The sources Detect reports.
const (
	SourceNone       = ""
	SourceKubeconfig = "kubeconfig"
	SourceInCluster  = "in-cluster"
)

// Detection says where a Kubernetes client configuration was found.
type Detection struct {
	// Source is SourceKubeconfig, SourceInCluster or SourceNone.
	Source string
	// Path is the kubeconfig file found, for SourceKubeconfig.
	Path string
}

// inClusterTokenFile is where Kubernetes mounts a pod's service account token.
const inClusterTokenFile = "/var/run/secrets/kubernetes.io/serviceaccount/token" //nolint:gosec // a path, not a credential

// Detect reports whether this process can reach a cluster without being told
// how: running in a pod (KUBERNETES_SERVICE_HOST and a mounted service
// account token), or a kubeconfig file named by KUBECONFIG or at
// ~/.kube/config. In a pod the in-cluster configuration wins, as it does in
// NewCluster. It only looks at the environment and the file system.
func Detect() Detection {
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != "" && isFile(inClusterTokenFile) {
		return Detection{Source: SourceInCluster}
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		for _, p := range filepath.SplitList(env) {
			if p != "" && isFile(p) {
				return Detection{Source: SourceKubeconfig, Path: p}
			}
		}
		return Detection{}
	}
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, ".kube", "config"); isFile(p) {
			return Detection{Source: SourceKubeconfig, Path: p}
		}
	}
	return Detection{}
}

func isFile(p string) bool {
	info, err := os.Stat(p) //nolint:gosec // the operator's own KUBECONFIG or home directory
	return err == nil && info.Mode().IsRegular()
}

// errorf builds an internal error of this package.
func errorf(format string, args ...any) error { return fmt.Errorf("kube: "+format, args...) }
