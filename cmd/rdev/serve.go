package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/uptrace/bun/migrate"
	"k8s.io/klog/v2"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/hub"
	"github.com/rdev-hq/rdev/infra/local"
	"github.com/rdev-hq/rdev/infra/postgres"
	"github.com/rdev-hq/rdev/infra/ratelimit"
	"github.com/rdev-hq/rdev/infra/telemetry"
	"github.com/rdev-hq/rdev/infra/webhook"
	"github.com/rdev-hq/rdev/infra/websocket"
	"github.com/rdev-hq/rdev/resolvers"
)

// serveConfig is everything `rdev serve` can be told.
type serveConfig struct {
	store              storeConfig
	Host               string
	Port               int
	Workspace          string
	ExampleProject     string
	GraphiQL           string
	Introspection      string
	AllowedOrigins     []string
	TrustedProxies     []string
	MaxBodyBytes       int
	BodyTimeout        time.Duration
	ParserTokenLimit   int
	graphQL            graphQLConfig
	KeepAlive          time.Duration
	timeouts           httpTimeouts
	ShutdownTimeout    time.Duration
	UsageFlushInterval time.Duration
	AutoMigrate        bool
	commands           commandConfig
	rateLimit          rateLimitConfig
	executor           executorConfig
	audit              auditConfig
	metrics            metricsConfig
	webhooks           webhookConfig
	secrets            secretsConfig
	logConfig
}

func (c *serveConfig) register(f *envFlags) {
	c.store.register(f)
	f.String(&c.Host, "host", "RDEV_HOST", "", "address to listen on (empty: 127.0.0.1 with the embedded database, this machine only; 0.0.0.0, every interface, with DATABASE_URL)")
	f.Int(&c.Port, "port", "PORT", 8080, "port to listen on")
	f.String(&c.Workspace, "workspace", "RDEV_WORKSPACE", "./workspace", "root of local projects: each subdirectory is a project")
	f.String(&c.ExampleProject, "example-project", "RDEV_EXAMPLE_PROJECT", "demo", "project directory created in an empty workspace (empty: none)")
	f.String(&c.GraphiQL, "graphiql", "RDEV_GRAPHIQL", "auto", "serve GraphiQL at /: true, false, or auto (on with the embedded database)")
	f.String(&c.Introspection, "introspection", "RDEV_INTROSPECTION", "auto", "allow schema introspection: true, false, or auto (on with the embedded database)")
	f.List(&c.AllowedOrigins, "allowed-origins", "RDEV_ALLOWED_ORIGINS", "browser Origins (scheme://host[:port]) of web pages allowed to call the API, by HTTP (CORS) and WebSocket, besides the server's own (* for any)")
	f.List(&c.TrustedProxies, "trusted-proxies", "RDEV_TRUSTED_PROXIES", "CIDRs of proxies whose X-Forwarded-For is believed")
	f.Int(&c.MaxBodyBytes, "max-body-bytes", "RDEV_MAX_BODY_BYTES", resolvers.DefaultMaxBodyBytes, "largest request body accepted")
	f.Duration(&c.BodyTimeout, "body-timeout", "RDEV_BODY_TIMEOUT", resolvers.DefaultBodyTimeout, "how long a request body may take to arrive before the request is refused (408)")
	f.Int(&c.ParserTokenLimit, "parser-token-limit", "RDEV_PARSER_TOKEN_LIMIT", resolvers.DefaultParserTokenLimit, "most tokens in one GraphQL document")
	f.Duration(&c.KeepAlive, "keepalive", "RDEV_KEEPALIVE", resolvers.DefaultKeepAlive, "WebSocket ping and SSE keep-alive interval")
	c.timeouts.register(f)
	f.Duration(&c.ShutdownTimeout, "shutdown-timeout", "RDEV_SHUTDOWN_TIMEOUT", 15*time.Second, "how long requests and running commands get to finish on SIGTERM")
	f.Duration(&c.UsageFlushInterval, "usage-flush-interval", "RDEV_USAGE_FLUSH_INTERVAL", time.Minute, "how often API keys' last-used times are written")
	f.Bool(&c.AutoMigrate, "auto-migrate", "RDEV_AUTO_MIGRATE", true, "apply pending migrations at start-up")
	c.graphQL.register(f)
	c.commands.register(f)
	c.rateLimit.register(f)
	c.executor.register(f)
	c.audit.register(f)
	c.secrets.register(f)
	c.metrics.register(f)
	c.webhooks.register(f)
	c.logConfig.register(f)
}

func runServe(ctx context.Context, args []string, c cli) error {
	var cfg serveConfig
	f := newEnvFlags("rdev serve", c.getenv, c.stderr)
	cfg.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() > 0 {
		return usageError("serve takes no arguments, got " + f.Arg(0))
	}
	log, err := cfg.logger(c.stderr)
	if err != nil {
		return err
	}
	if limit := memoryLimitFor(c.getenv, cgroupRoot); limit > 0 {
		debug.SetMemoryLimit(limit)
		log.Debug("memory limit from the cgroup", "gomemlimit", limit)
	}
	// client-go reports what it cannot return through klog, a process-wide
	// logger set before any client runs: into rdev's log, not bare lines on
	// stderr.
	klog.SetSlogLogger(log.With("component", "client-go"))
	tracing, err := telemetry.NewTracing(ctx, version, c.getenv, log)
	if err != nil {
		return err
	}
	defer flushTraces(tracing, cfg.ShutdownTimeout, log)
	s, err := openServer(ctx, cfg, log, tracing)
	if err != nil {
		return err
	}
	defer s.close()
	s.banner(ctx, c)
	return s.run(ctx)
}

// server is a running `rdev serve`: its store, services and HTTP server.
type server struct {
	cfg      serveConfig
	log      *slog.Logger
	store    *bunstore.Store
	ms       *migrate.Migrations
	keys     *domain.APIKeyService
	audit    *domain.AuditService
	webhooks *domain.WebhookService
	secrets  *domain.SecretService
	networks *domain.ProjectNetworkService
	// deliveries sends webhook messages through sender.
	deliveries *domain.WebhookWorker
	sender     *webhook.Sender
	commands   *domain.CommandService
	dispatcher *domain.Dispatcher
	health     *domain.HealthService
	backend    backend
	hub        *hub.Hub
	bcast      *postgres.Broadcaster // nil on SQLite: one process
	rateStore  *rateLimitStore
	http       *http.Server
	ln         net.Listener
	metrics    *metricsServer            // nil unless RDEV_METRICS_ADDR is set
	checkpoint *domain.AuditCheckpointer // nil without an audit key
	// conns counts the sockets, streams and subscriptions callers hold.
	conns *domain.ConnLimits
}

// flushTraces exports the spans still buffered, giving up after timeout.
func flushTraces(t *telemetry.Tracing, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		log.Warn("exporting the last traces", "err", err)
	}
}

// openServer opens the store and the backend and wires the services, with
// spans from tracing.
func openServer(ctx context.Context, cfg serveConfig, log *slog.Logger, tracing *telemetry.Tracing) (*server, error) {
	graphiql, err := autoBool("RDEV_GRAPHIQL", cfg.GraphiQL, cfg.store.embedded())
	if err != nil {
		return nil, err
	}
	introspection, err := autoBool("RDEV_INTROSPECTION", cfg.Introspection, cfg.store.embedded())
	if err != nil {
		return nil, err
	}
	trusted, err := domain.ParseCIDRs(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("RDEV_TRUSTED_PROXIES: %s", domain.ErrorMessage(err))
	}
	redact, err := cfg.audit.redact()
	if err != nil {
		return nil, err
	}
	limits, err := cfg.commands.limits()
	if err != nil {
		return nil, err
	}
	rateLimits, err := cfg.rateLimit.limits()
	if err != nil {
		return nil, err
	}
	gql, err := cfg.graphQL.edge(cfg.store.embedded())
	if err != nil {
		return nil, err
	}
	if err := cfg.timeouts.validate(); err != nil {
		return nil, err
	}
	executor, err := cfg.executor.kind()
	if err != nil {
		return nil, err
	}
	secretsBackend, err := cfg.secrets.backend(executor)
	if err != nil {
		return nil, err
	}
	if gql.TrustedDocuments != nil {
		log.Info("trusted documents loaded", "path", cfg.graphQL.TrustedDocuments,
			"operations", gql.TrustedDocuments.Len(), "only", gql.TrustedDocumentsOnly)
	}

	if err := cfg.store.prepareDataDir(log); err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, log: log}
	if cfg.AutoMigrate {
		s.store, s.ms, err = cfg.store.openMigrated(ctx)
	} else {
		s.store, s.ms, err = cfg.store.open(ctx)
	}
	if err != nil {
		return nil, err
	}
	s.store.TraceWith(tracing)
	if tracing.Records() {
		// Without spans to record, the hook would only cost every query
		// the event bun builds for it.
		s.store.WithQueryHook(tracing.QueryHook())
	}
	if s.checkpoint, err = cfg.audit.open(s.store, cfg.store, log); err != nil {
		_ = s.store.Close()
		return nil, err
	}
	s.rateStore, err = cfg.rateLimit.open(ctx, s.store, cfg.store.embedded())
	if err != nil {
		_ = s.store.Close()
		return nil, err
	}
	var projectService *domain.ProjectService // told of changes once the backend runs
	s.backend, err = openBackend(cfg, log, func(p *domain.Project) { projectService.Changed(p) }, tracing.Transport)
	if err != nil {
		s.close()
		return nil, err
	}
	projects := s.backend.projects
	s.store.ProjectsFrom(projects)
	metrics := telemetry.New()
	auditRepo := metrics.AuditRepository(s.store)
	s.audit = domain.NewAuditService(auditRepo, redact).JudgeProjectsWith(projects)
	s.webhooks = domain.NewWebhookService(s.store, s.audit, cfg.webhooks.AllowHTTP)
	var kubeSecrets domain.SecretStore
	if secretsBackend == secretsInKubernetes {
		kubeSecrets = s.backend.secrets(auditRepo)
	}
	var keys keyring
	if s.secrets, keys, err = cfg.secrets.open(ctx, s.store, cfg.store, projects, s.audit, kubeSecrets, log); err != nil {
		s.close()
		return nil, err
	}
	observe := func(ws domain.WebhookSender) domain.WebhookSender {
		return tracing.WebhookSender(metrics.WebhookSender(ws))
	}
	if s.deliveries, s.sender, err = cfg.webhooks.worker(s.store, log, observe); err != nil {
		s.close()
		return nil, err
	}
	s.hub = hub.NewWithBudget(limits.SubscriberBuffer)
	events := s.hub
	var bcast domain.Broadcaster
	if !cfg.store.embedded() {
		s.bcast = postgres.NewBroadcaster(s.store)
		bcast = s.bcast
	}
	s.keys = domain.NewAPIKeyService(s.store, s.audit, events, bcast)
	s.keys.DefaultRateLimit = rateLimits.RequestsPerSecond
	s.commands = domain.NewCommandService(s.store, projects, events, bcast, s.audit, limits, tracing)
	var envSealer domain.SecretSealer
	if keys != nil {
		// Queued commands' env values are stored only sealed.
		envSealer = keys
		s.commands.SealEnvWith(envSealer)
	}
	writes := new(domain.WriteHealth)
	owner, gone := dispatcherOwner()
	var journal domain.FinishJournal
	if j, err := local.NewJournal(filepath.Join(cfg.store.DataDir, "pending-results")); err != nil {
		log.Warn("results that storage refuses will not be kept across restarts", "err", err)
	} else {
		journal = j
	}
	s.networks = domain.NewProjectNetworkService(s.store, projects, s.audit, s.backend.network, s.backend.networks)
	runs := s.backend.executor
	if s.backend.networks {
		runs = s.networks.Executor(runs)
	}
	protocols, err := cfg.commands.agentProtocols()
	if err != nil {
		return nil, err
	}
	agents := domain.NewAgentService(s.commands, protocols, domain.ClaudeCodeProtocol)
	agents.RecordSummariesIn(metrics.AgentRunRepository(s.store))
	budgets, err := cfg.commands.agentBudgets()
	if err != nil {
		return nil, err
	}
	agents.LimitDailySpend(budgets)
	s.dispatcher = domain.NewDispatcher(s.store, projects, tracing.Executor(runs), metrics.Hub(events), bcast,
		domain.DispatcherConfig{
			Owner: owner, Gone: gone, Journal: journal,
			Concurrency: limits.Concurrency, PerProject: limits.PerProject,
			LeaseTTL: cfg.commands.LeaseTTL, Output: cfg.commands.output(), Logger: log,
			DrainTimeout: cfg.ShutdownTimeout, FinishGrace: cfg.commands.FinishGrace, Tracer: tracing, Writes: writes,
			Secrets: s.secrets.Open, EnvSealer: envSealer, Finished: agents.Record,
		})
	metrics.Register(telemetry.NewWriteHealthCollector(writes), telemetry.NewSecretsKeysCollector(keyIDs(keys)))
	s.health = domain.NewHealthService(append([]domain.HealthCheck{domain.HealthCheckFunc(s.databaseHealth), writes, keysHealth(keys)}, s.backend.checks...)...)
	projectService = domain.NewProjectService(projects, s.hub)
	root := &resolvers.Resolver{
		AgentService:   agents,
		ProjectService: projectService,
		APIKeyService:  s.keys,
		CommandService: s.commands,
		HealthService:  s.health,
		AuditService:   s.audit,
		WebhookService: s.webhooks,
		SecretService:  s.secrets,
		NetworkService: s.networks,
		// Failed authentications are counted in memory: cheap, and per
		// process is enough to slow guessing down.
		RateLimitService: domain.NewRateLimitService(ratelimit.New(s.rateStore.store), ratelimit.New(ratelimit.NewMemoryStore()), rateLimits),
	}
	gql.Logger = log
	s.conns = gql.ConnLimits
	gql.GraphiQL = graphiql
	gql.Introspection = introspection
	gql.MaxBodyBytes = int64(cfg.MaxBodyBytes)
	gql.BodyTimeout = cfg.BodyTimeout
	gql.ParserTokenLimit = cfg.ParserTokenLimit
	gql.TrustedProxies = trusted
	gql.KeepAlive = cfg.KeepAlive
	// One notion of an allowed Origin, for WebSockets and CORS alike.
	allowedOrigin := websocket.OriginChecker(cfg.AllowedOrigins)
	gql.AllowedOrigin = allowedOrigin
	gql.Websocket = func(auth resolvers.WebsocketAuth, admit resolvers.WebsocketAdmit, keepAlive time.Duration) graphql.Transport {
		return websocket.Transport{
			Upgrade:       websocket.Implementation{CheckOrigin: allowedOrigin},
			InitFunc:      auth,
			Admit:         admit,
			KeepAlive:     keepAlive,
			ReadLimit:     int64(cfg.graphQL.WSReadLimit),
			MaxOperations: cfg.graphQL.MaxSubscriptionsPerConnection,
		}
	}
	gql.Ready = s.health.Ready
	// The tracing extension comes first, so its span covers the others.
	if tracing.Records() {
		gql.Extensions = []graphql.HandlerExtension{tracing.GraphQL()}
	}
	var h http.Handler
	if cfg.metrics.Enabled {
		metrics.Register(telemetry.NewQueueCollector(s.store.QueueStats, log), telemetry.NewProjectsCollector(projects, log),
			telemetry.NewDBCollector(s.store.DB().DB), telemetry.NewConnectionsCollector(gql.ConnLimits),
			telemetry.NewAuthCollector(s.keys.AuthStats))
		if s.backend.breakerState != nil {
			metrics.Register(telemetry.NewBreakerCollector(s.backend.cluster, s.backend.breakerState))
			metrics.Register(telemetry.NewWarmStreamsCollector(s.backend.cluster, s.backend.warmStreams))
		}
		gql.Extensions = append(gql.Extensions, metrics.GraphQL())
		if cfg.metrics.Addr == "" {
			gql.Metrics = metrics.Handler()
		}
		h = metrics.Middleware(resolvers.NewHandler(root, gql))
	} else {
		h = resolvers.NewHandler(root, gql)
	}
	h = tracing.Middleware(h)
	if s.metrics, err = cfg.metrics.listen(ctx, metrics, &cfg.timeouts, log); err != nil {
		s.close()
		return nil, err
	}
	s.ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", net.JoinHostPort(cfg.host(), strconv.Itoa(cfg.Port)))
	if err != nil {
		s.close()
		return nil, err
	}
	s.http = cfg.timeouts.server(h, log)
	return s, nil
}

// databaseHealth reports whether the database answers and its schema is
// current.
func (s *server) databaseHealth(ctx context.Context) domain.ComponentHealth {
	if err := s.databaseReady(ctx); err != nil {
		return domain.ComponentHealth{Name: "database", Status: domain.ComponentDown, Detail: domain.ErrorMessage(err), Essential: true}
	}
	// The kind only: where the database lies is no client's business.
	return domain.ComponentHealth{Name: "database", Status: domain.ComponentOK, Detail: s.cfg.store.kind(), Essential: true}
}

// databaseReady returns EUNAVAILABLE unless the database answers and its
// schema is current.
func (s *server) databaseReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		return domain.Errorf(domain.EUNAVAILABLE, "database unreachable")
	}
	n, err := s.store.PendingMigrations(ctx, s.ms)
	if err != nil {
		return err
	} else if n > 0 {
		return domain.Errorf(domain.EUNAVAILABLE, "%d database migrations pending: run rdev migrate up", n)
	}
	return nil
}

// run serves until ctx ends, then drains: new connections stop at once,
// streams are told to end, and in-flight requests get ShutdownTimeout.
func (s *server) run(ctx context.Context) error {
	base, cancelStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStreams()
	s.http.BaseContext = func(net.Listener) context.Context { return base }
	s.http.RegisterOnShutdown(cancelStreams)

	var workers sync.WaitGroup
	// API keys' last-used times are written in batches.
	workers.Go(func() { s.every(base, s.cfg.UsageFlushInterval, "writing API key usage", s.keys.FlushUsage) })
	if s.rateStore.sweep != nil {
		workers.Go(func() {
			s.every(base, time.Minute, "sweeping rate limits", func(ctx context.Context) error {
				_, err := s.rateStore.sweep(ctx)
				return err
			})
		})
	}
	if s.checkpoint != nil {
		if err := s.checkpointAudit(base); err != nil {
			s.log.Warn("writing an audit checkpoint", "err", err)
		}
		workers.Go(func() {
			s.every(base, s.cfg.audit.CheckpointInterval, "writing an audit checkpoint", s.checkpointAudit)
		})
	}
	if s.backend.start != nil {
		s.backend.start(base)
	}
	dispatchCtx, stopDispatch := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDispatch()
	workers.Go(func() { _ = s.dispatcher.Run(dispatchCtx) })
	workers.Go(func() { s.keys.FollowKeyChanges(base) })
	// Webhook messages are sent apart from commands; on shutdown attempts
	// in flight end with the dispatcher's, and are retried by the next run.
	workers.Go(func() { s.deliveries.Run(dispatchCtx) })
	if s.bcast != nil {
		workers.Go(func() {
			relay := func(topic string, e domain.Event) { s.commands.Relay(base, topic, e) }
			if err := s.bcast.Listen(base, relay); err != nil && base.Err() == nil {
				s.log.Error("listening for other rdev processes", "err", err)
			}
		})
	}

	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	if s.metrics != nil {
		go s.metrics.serve(s.log)
		s.log.Info("serving metrics", "addr", s.metrics.ln.Addr().String())
	}
	s.log.Info("rdev serving", "addr", s.ln.Addr().String(), "database", s.cfg.store.where(), "projects", s.backend.where,
		"rate_limit_store", s.rateStore.kind, "version", version)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	// Running commands get the same time as requests to finish; those that
	// do not end INTERRUPTED.
	stopDispatch()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err := s.http.Shutdown(sctx)
	if s.metrics != nil {
		if merr := s.metrics.http.Shutdown(sctx); merr != nil {
			s.log.Warn("stopping the metrics listener", "err", merr)
		}
	}
	cancelStreams()
	workers.Wait()
	if ferr := s.keys.FlushUsage(sctx); ferr != nil {
		s.log.Warn("writing API key usage", "err", ferr)
	}
	// After the dispatcher's last command.finish entries.
	if cerr := s.checkpointAudit(sctx); cerr != nil {
		s.log.Warn("writing the last audit checkpoint", "err", cerr)
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// every runs job each interval until ctx ends, logging its failures as what.
func (s *server) every(ctx context.Context, interval time.Duration, what string, job func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := job(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn(what, "err", err)
			}
		}
	}
}

func (s *server) close() {
	if s.backend.close != nil {
		s.backend.close()
	}
	if s.metrics != nil {
		_ = s.metrics.ln.Close() // already closed if it served
	}
	if s.sender != nil {
		s.sender.Close()
	}
	if err := s.rateStore.close(); err != nil {
		s.log.Warn("closing the rate limit store", "err", err)
	}
	if err := s.store.Close(); err != nil {
		s.log.Warn("closing database", "err", err)
	}
}

// host is the address to listen on: as configured, or by default the
// loopback address with the embedded database (a development setup, whose
// GraphiQL, introspection and metrics are on, stays on this machine) and
// every interface with Postgres (a deployment).
func (c *serveConfig) host() string {
	switch {
	case c.Host != "":
		return c.Host
	case c.store.embedded():
		return "127.0.0.1"
	}
	return "0.0.0.0"
}

// banner tells a person at a terminal where rdev is, who can reach it, and
// how to start.
func (s *server) banner(ctx context.Context, c cli) {
	addr := s.ln.Addr().(*net.TCPAddr)
	host := "localhost"
	if !addr.IP.IsUnspecified() {
		host = addr.IP.String()
	}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
	reach := "every network interface"
	if addr.IP.IsLoopback() {
		reach = "this machine only: --host 0.0.0.0 or RDEV_HOST=0.0.0.0 exposes it to the network"
	}
	_, _ = fmt.Fprintf(c.stdout, "rdev %s listening on %s (%s)\n  GraphQL:  %s/graphql\n  Projects: %s\n", version, addr, reach, url, s.backend.where)
	if s.backend.warning != "" {
		_, _ = fmt.Fprintf(c.stdout, "  WARNING:  %s\n", s.backend.warning)
	}
	if graphiql, _ := autoBool("", s.cfg.GraphiQL, s.cfg.store.embedded()); graphiql {
		_, _ = fmt.Fprintf(c.stdout, "  GraphiQL: %s/\n", url)
	}
	keys, err := s.store.FindAPIKeys(ctx, domain.APIKeyFilter{Limit: 1})
	if err == nil && len(keys) == 0 {
		create := "rdev keys create --name admin --admin"
		if s.cfg.store.embedded() && s.cfg.store.DataDir != defaultDataDir {
			create += " --data-dir " + filepath.Dir(strings.TrimPrefix(s.cfg.store.where(), "sqlite:"))
		}
		_, _ = fmt.Fprintf(c.stdout, "No API keys yet. Create the first one with:\n  %s\n"+
			"then send it as the header  Authorization: Bearer <token>\n", create)
	}
}

// autoBool reads "true", "false" or "auto" (which means auto).
func autoBool(name, v string, auto bool) (bool, error) {
	switch v {
	case "auto", "":
		return auto, nil
	case "true", "1", "on":
		return true, nil
	case "false", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("%s: %q is not true, false or auto", name, v)
}
