// Package telemetry is rdev's Prometheus instrumentation: the metrics, the
// HTTP middleware and GraphQL extension that feed them, the collectors that
// read queue, database, breaker and project state at scrape time, and the
// /metrics handler.
package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// CollectTimeout bounds how long one scrape-time collector may read a store
// or service; one that takes longer reports nothing for that scrape.
const CollectTimeout = 2 * time.Second

// durationBuckets suit requests and operations: 5 ms to 30 s.
var durationBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// commandBuckets suit commands: 10 ms to an hour.
var commandBuckets = []float64{.01, .1, .5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600}

// Metrics is every metric rdev exports, registered in its own registry (with
// the Go runtime and process collectors), so tests and several servers in one
// process never share counters. The zero value is not usable; call New.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
	wsActive     prometheus.Gauge
	// requestsBy and durationBy are the children of httpRequests and
	// httpDuration that requests count into, kept at hand.
	requestsBy series[requestKey, prometheus.Counter]
	durationBy series[routeKey, prometheus.Observer]

	gqlOperations *prometheus.CounterVec
	gqlDuration   *prometheus.HistogramVec
	subsActive    prometheus.Gauge
	rateLimited   *prometheus.CounterVec
	opNames       *boundedLabel
	codes         *boundedLabel
	// operationsBy and opDurationBy are the children of gqlOperations and
	// gqlDuration that operations count into, kept at hand.
	operationsBy series[outcomeKey, prometheus.Counter]
	opDurationBy series[operationKey, prometheus.Observer]

	commandsFinished *prometheus.CounterVec
	commandDuration  *prometheus.HistogramVec
	outputBytes      prometheus.Counter

	auditFailures prometheus.Counter

	webhookDeliveries *prometheus.CounterVec
	webhookDuration   *prometheus.HistogramVec

	agentRuns   *prometheus.CounterVec
	agentCost   *prometheus.CounterVec
	agentTokens *prometheus.CounterVec
	projects    *boundedLabel
}

// New returns metrics registered in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdev_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rdev_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request, by route pattern and method; WebSocket and SSE streams are left out.",
			Buckets: durationBuckets,
		}, []string{"route", "method"}),
		wsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rdev_websocket_connections",
			Help: "WebSocket connections open now.",
		}),
		gqlOperations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdev_graphql_operations_total",
			Help: "GraphQL operations answered, by operation type, operation name and outcome (the first error's extensions.code, or OK).",
		}, []string{"type", "name", "code"}),
		gqlDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rdev_graphql_operation_duration_seconds",
			Help:    "Time from an operation's start to its (first) response, by operation type and name.",
			Buckets: durationBuckets,
		}, []string{"type", "name"}),
		subsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "rdev_graphql_subscriptions",
			Help: "GraphQL subscriptions running now, over every transport.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdev_rate_limit_rejections_total",
			Help: "Requests and operations refused as RATE_LIMITED, by where they were refused: http (before GraphQL) or graphql.",
		}, []string{"layer"}),
		opNames: newBoundedLabel(MaxOperationNames),
		codes:   newBoundedLabel(maxCodes),
		commandsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdev_commands_finished_total",
			Help: "Commands this process's dispatcher ended (ran, or found with an expired lease), by final status.",
		}, []string{"status"}),
		commandDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rdev_command_duration_seconds",
			Help:    "Time from a command's start to its end, by final status.",
			Buckets: commandBuckets,
		}, []string{"status"}),
		outputBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rdev_command_output_bytes_total",
			Help: "Output bytes (stdout and stderr, stored or not) of the commands this process ran, counted when each ends.",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rdev_audit_write_failures_total",
			Help: "Audit entries that could not be written on their own (entries written with a mutation fail the mutation instead).",
		}),
		webhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdev_webhook_deliveries_total",
			Help: "Webhook delivery attempts, by outcome.",
		}, []string{"outcome"}),
		webhookDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rdev_webhook_delivery_duration_seconds",
			Help:    "Time of one webhook delivery attempt, by outcome.",
			Buckets: durationBuckets,
		}, []string{"outcome"}),
		agentRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdev_agent_runs_total",
			Help: "Agent runs that ended with the agent's summary, recorded by this process, by project and the agent's status.",
		}, []string{"project", "status"}),
		agentCost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdev_agent_cost_usd_total",
			Help: "What those agent runs cost, in US dollars as the agent computed it, by project.",
		}, []string{"project"}),
		agentTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rdev_agent_tokens_total",
			Help: "Model tokens of those agent runs, by project and kind (input, output, cache_read).",
		}, []string{"project", "kind"}),
		projects: &boundedLabel{max: MaxProjectLabels, seen: map[string]struct{}{}, valid: isProjectLabel},
	}
	m.requestsBy.child, m.durationBy.child = m.requestCounter, m.requestObserver
	m.operationsBy.child, m.opDurationBy.child = m.operationCounter, m.operationObserver
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.httpRequests, m.httpDuration, m.wsActive,
		m.gqlOperations, m.gqlDuration, m.subsActive, m.rateLimited,
		m.commandsFinished, m.commandDuration, m.outputBytes,
		m.auditFailures, m.webhookDeliveries, m.webhookDuration,
		m.agentRuns, m.agentCost, m.agentTokens,
	)
	return m
}

// Register adds collectors, such as those of this package's New…Collector
// functions, to the registry. It panics if one collides with a metric
// already registered, which is a programming error.
func (m *Metrics) Register(cs ...prometheus.Collector) {
	m.reg.MustRegister(cs...)
}

// Gatherer returns the registry, for tests and other exporters.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Handler serves the metrics in the Prometheus text (or OpenMetrics, when
// asked for) exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// ObserveWebhookDelivery records one webhook delivery attempt: its outcome
// (a short fixed word such as "delivered", "failed", "gave_up"; never a URL)
// and how long it took.
func (m *Metrics) ObserveWebhookDelivery(outcome string, took time.Duration) {
	m.webhookDeliveries.WithLabelValues(outcome).Inc()
	m.webhookDuration.WithLabelValues(outcome).Observe(took.Seconds())
}
