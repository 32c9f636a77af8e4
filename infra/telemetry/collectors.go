package telemetry

import (
	"context"
	"database/sql"
	"log/slog"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rdev-hq/rdev/domain"
)

// funcCollector reads its values at scrape time with collect, bounded by
// CollectTimeout. A read that fails reports nothing and is logged.
type funcCollector struct {
	descs   []*prometheus.Desc
	what    string
	log     *slog.Logger
	collect func(ctx context.Context, ch chan<- prometheus.Metric) error
}

// Describe sends the descriptions of every metric the collector reports.
func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads the values now, within CollectTimeout.
func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), CollectTimeout)
	defer cancel()
	if err := c.collect(ctx, ch); err != nil && c.log != nil {
		c.log.Warn("collecting metrics: "+c.what, "err", err)
	}
}

// NewQueueCollector reports the queue at scrape time from stats (a command
// repository's QueueStats): rdev_queue_depth by priority and
// rdev_commands_running. Both are the whole queue's, across replicas.
func NewQueueCollector(stats func(context.Context) (domain.QueueStats, error), log *slog.Logger) prometheus.Collector {
	depth := prometheus.NewDesc("rdev_queue_depth", "Commands QUEUED now, by priority.", []string{"priority"}, nil)
	running := prometheus.NewDesc("rdev_commands_running", "Commands RUNNING now.", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{depth, running}, what: "queue", log: log,
		collect: func(ctx context.Context, ch chan<- prometheus.Metric) error {
			st, err := stats(ctx)
			if err != nil {
				return err
			}
			for _, p := range domain.Priorities {
				ch <- prometheus.MustNewConstMetric(depth, prometheus.GaugeValue, float64(st.Queued[p]), p.String())
			}
			ch <- prometheus.MustNewConstMetric(running, prometheus.GaugeValue, float64(st.Running))
			return nil
		}}
}

// NewProjectsCollector reports rdev_projects, the projects known now by
// status: with Kubernetes, the informer cache's pods.
func NewProjectsCollector(repo domain.ProjectRepository, log *slog.Logger) prometheus.Collector {
	desc := prometheus.NewDesc("rdev_projects", "Projects known now (the pod informer's cache with Kubernetes), by status.", []string{"status"}, nil)
	return &funcCollector{descs: []*prometheus.Desc{desc}, what: "projects", log: log,
		collect: func(ctx context.Context, ch chan<- prometheus.Metric) error {
			ps, err := repo.FindProjects(ctx, domain.ProjectFilter{})
			if err != nil {
				return err
			}
			n := map[domain.ProjectStatus]int{}
			for _, p := range ps {
				n[p.Status]++
			}
			for _, s := range domain.ProjectStatuses {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n[s]), string(s))
			}
			return nil
		}}
}

// NewWriteHealthCollector reports whether storage takes commands' output
// and results: rdev_storage_writes_failing, the writers whose writes are
// refused now, and rdev_command_output_lost_bytes_total, the output given
// up after storage refused it for too long.
func NewWriteHealthCollector(w *domain.WriteHealth) prometheus.Collector {
	failing := prometheus.NewDesc("rdev_storage_writes_failing", "Writers (running commands' output, and results being recorded) whose writes storage refuses now.", nil, nil)
	lost := prometheus.NewDesc("rdev_command_output_lost_bytes_total", "Output bytes given up because storage refused them for longer than they are held (RDEV_OUTPUT_HOLD).", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{failing, lost}, what: "storage writes",
		collect: func(_ context.Context, ch chan<- prometheus.Metric) error {
			ch <- prometheus.MustNewConstMetric(failing, prometheus.GaugeValue, float64(w.Failing()))
			ch <- prometheus.MustNewConstMetric(lost, prometheus.CounterValue, float64(w.LostBytes()))
			return nil
		}}
}

// Breaker states as rdev_circuit_breaker_state reports them.
const (
	BreakerClosed   = 0
	BreakerHalfOpen = 1
	BreakerOpen     = 2
)

// NewBreakerCollector reports rdev_circuit_breaker_state of cluster's
// breaker: 0 closed, 1 half-open, 2 open. state returns "closed",
// "half-open" or "open".
func NewBreakerCollector(cluster string, state func() string) prometheus.Collector {
	desc := prometheus.NewDesc("rdev_circuit_breaker_state",
		"State of the circuit breaker in front of a Kubernetes API server: 0 closed, 1 half-open, 2 open.",
		[]string{"cluster"}, nil)
	return &funcCollector{descs: []*prometheus.Desc{desc}, what: "circuit breaker",
		collect: func(_ context.Context, ch chan<- prometheus.Metric) error {
			v := BreakerClosed
			switch state() {
			case "half-open":
				v = BreakerHalfOpen
			case "open":
				v = BreakerOpen
			}
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(v), cluster)
			return nil
		}}
}

// NewWarmStreamsCollector reports the warm exec streams (see infra/kube)
// held open to cluster's pods: ready for a command, or still opening.
func NewWarmStreamsCollector(cluster string, count func() (ready, opening int)) prometheus.Collector {
	desc := prometheus.NewDesc("rdev_kube_warm_streams",
		"Exec streams held open to project pods for their next commands, by state: ready, or opening.",
		[]string{"cluster", "state"}, nil)
	return &funcCollector{descs: []*prometheus.Desc{desc}, what: "warm exec streams",
		collect: func(_ context.Context, ch chan<- prometheus.Metric) error {
			ready, opening := count()
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(ready), cluster, "ready")
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(opening), cluster, "opening")
			return nil
		}}
}

// NewDBCollector reports db's connection pool (sql.DB.Stats).
func NewDBCollector(db *sql.DB) prometheus.Collector {
	open := prometheus.NewDesc("rdev_db_connections_open", "Database connections open now, in use or idle.", nil, nil)
	inUse := prometheus.NewDesc("rdev_db_connections_in_use", "Database connections in use now.", nil, nil)
	idle := prometheus.NewDesc("rdev_db_connections_idle", "Database connections idle now.", nil, nil)
	maxOpen := prometheus.NewDesc("rdev_db_connections_max_open", "Most database connections the pool opens (0: no limit).", nil, nil)
	waits := prometheus.NewDesc("rdev_db_waits_total", "Times a query waited for a free database connection.", nil, nil)
	waited := prometheus.NewDesc("rdev_db_wait_duration_seconds_total", "Time spent waiting for free database connections.", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{open, inUse, idle, maxOpen, waits, waited}, what: "database pool",
		collect: func(_ context.Context, ch chan<- prometheus.Metric) error {
			st := db.Stats()
			ch <- prometheus.MustNewConstMetric(open, prometheus.GaugeValue, float64(st.OpenConnections))
			ch <- prometheus.MustNewConstMetric(inUse, prometheus.GaugeValue, float64(st.InUse))
			ch <- prometheus.MustNewConstMetric(idle, prometheus.GaugeValue, float64(st.Idle))
			ch <- prometheus.MustNewConstMetric(maxOpen, prometheus.GaugeValue, float64(st.MaxOpenConnections))
			ch <- prometheus.MustNewConstMetric(waits, prometheus.CounterValue, float64(st.WaitCount))
			ch <- prometheus.MustNewConstMetric(waited, prometheus.CounterValue, st.WaitDuration.Seconds())
			return nil
		}}
}

// NewConnectionsCollector reports rdev_open_connections: the WebSockets and
// SSE streams open now in this process, by transport ("websocket", "sse"),
// as limits counts them against their callers' caps.
func NewConnectionsCollector(limits *domain.ConnLimits) prometheus.Collector {
	desc := prometheus.NewDesc("rdev_open_connections",
		"WebSocket connections (from their connection_init on) and SSE streams open now in this process, by transport.",
		[]string{"transport"}, nil)
	return &funcCollector{descs: []*prometheus.Desc{desc}, what: "open connections",
		collect: func(_ context.Context, ch chan<- prometheus.Metric) error {
			for _, k := range []domain.ConnKind{domain.ConnSocket, domain.ConnStream} {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(limits.Count(k)), k.String())
			}
			return nil
		}}
}

// NewAuthCollector reports, from stats (an APIKeyService's AuthStats),
// rdev_auth_cache_lookups_total by result (hit, or miss: the key was read
// from the store), rdev_auth_cached_credentials and
// rdev_guarded_connections, the connections and streams that end when their
// key is revoked, in this process.
func NewAuthCollector(stats func() domain.AuthStats) prometheus.Collector {
	lookups := prometheus.NewDesc("rdev_auth_cache_lookups_total",
		"Lookups of API keys in this process's credential cache, by result (a miss reads the key from the store).", []string{"result"}, nil)
	cached := prometheus.NewDesc("rdev_auth_cached_credentials", "Credentials held in this process's cache now.", nil, nil)
	guarded := prometheus.NewDesc("rdev_guarded_connections",
		"WebSocket connections and SSE streams open now in this process that end when their API key is revoked, expires, is rotated away or narrowed.", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{lookups, cached, guarded}, what: "authentication",
		collect: func(_ context.Context, ch chan<- prometheus.Metric) error {
			st := stats()
			ch <- prometheus.MustNewConstMetric(lookups, prometheus.CounterValue, float64(st.CacheHits), "hit")
			ch <- prometheus.MustNewConstMetric(lookups, prometheus.CounterValue, float64(st.CacheMisses), "miss")
			ch <- prometheus.MustNewConstMetric(cached, prometheus.GaugeValue, float64(st.CachedCredentials))
			ch <- prometheus.MustNewConstMetric(guarded, prometheus.GaugeValue, float64(st.Guarded))
			return nil
		}}
}

// NewSecretsKeysCollector reports the key-encryption keys held now, by ID
// (never a key): rdev_secrets_keys{key_id, sealing} is 1 for each, sealing
// "true" for the first, the one that seals; and
// rdev_secrets_key_file_stale is 1 while the key file changed and was not
// taken. keys returns the IDs, the sealing one first (none without a key),
// and whether the file is stale.
func NewSecretsKeysCollector(keys func() (ids []string, stale bool)) prometheus.Collector {
	held := prometheus.NewDesc("rdev_secrets_keys", "Key-encryption keys of secrets held now, by ID; sealing is true for the one that seals.", []string{"key_id", "sealing"}, nil)
	staleDesc := prometheus.NewDesc("rdev_secrets_key_file_stale", "1 while the secrets key file changed and is not taken (the keys read before are kept).", nil, nil)
	return &funcCollector{descs: []*prometheus.Desc{held, staleDesc}, what: "secrets keys",
		collect: func(_ context.Context, ch chan<- prometheus.Metric) error {
			ids, stale := keys()
			for i, id := range ids {
				ch <- prometheus.MustNewConstMetric(held, prometheus.GaugeValue, 1, id, strconv.FormatBool(i == 0))
			}
			v := 0.0
			if stale {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.GaugeValue, v)
			return nil
		}}
}
