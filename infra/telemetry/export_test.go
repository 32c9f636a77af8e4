package telemetry

import "github.com/prometheus/client_golang/prometheus"

// Accessors for the tests in package telemetry_test. Tests must not reset
// or delete the vectors' series: the middleware and the extension keep the
// children they count into (see series).

func (m *Metrics) HTTPRequests() *prometheus.CounterVec        { return m.httpRequests }
func (m *Metrics) HTTPDuration() *prometheus.HistogramVec      { return m.httpDuration }
func (m *Metrics) WebSocketConnections() prometheus.Gauge      { return m.wsActive }
func (m *Metrics) GraphQLOperations() *prometheus.CounterVec   { return m.gqlOperations }
func (m *Metrics) GraphQLDuration() *prometheus.HistogramVec   { return m.gqlDuration }
func (m *Metrics) Subscriptions() prometheus.Gauge             { return m.subsActive }
func (m *Metrics) RateLimitRejections() *prometheus.CounterVec { return m.rateLimited }
func (m *Metrics) CommandsFinished() *prometheus.CounterVec    { return m.commandsFinished }
func (m *Metrics) CommandDuration() *prometheus.HistogramVec   { return m.commandDuration }
func (m *Metrics) OutputBytes() prometheus.Counter             { return m.outputBytes }
func (m *Metrics) AuditFailures() prometheus.Counter           { return m.auditFailures }
func (m *Metrics) WebhookDeliveries() *prometheus.CounterVec   { return m.webhookDeliveries }
func (m *Metrics) AgentRuns() *prometheus.CounterVec           { return m.agentRuns }
func (m *Metrics) AgentCost() *prometheus.CounterVec           { return m.agentCost }
func (m *Metrics) AgentTokens() *prometheus.CounterVec         { return m.agentTokens }
