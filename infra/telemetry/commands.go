package telemetry

import (
	"context"

	"github.com/rdev-hq/rdev/domain"
)

// Hub is a domain.Hub that records each command's end as it is published:
// give it to the dispatcher only, so every command this process ran (or
// found with an expired lease) is counted once, and ends relayed from other
// processes are not.
type Hub struct {
	domain.Hub
	m *Metrics
}

var _ domain.Hub = Hub{}

// Hub wraps h.
func (m *Metrics) Hub(h domain.Hub) Hub { return Hub{Hub: h, m: m} }

// Publish records e if it is a command's final status, then publishes it.
// A status is published on the command's topic and its project's; only the
// command's counts.
func (h Hub) Publish(topic string, e domain.Event) {
	if e.Kind == domain.EventStatus && e.Command != nil && e.Command.Status.Final() &&
		topic == domain.CommandTopic(e.Command.ID) {
		h.m.commandFinished(e.Command)
	}
	h.Hub.Publish(topic, e)
}

func (m *Metrics) commandFinished(c *domain.Command) {
	status := string(c.Status)
	m.commandsFinished.WithLabelValues(status).Inc()
	if c.StartedAt != nil && c.FinishedAt != nil {
		m.commandDuration.WithLabelValues(status).Observe(c.FinishedAt.Sub(*c.StartedAt).Seconds())
	}
	if c.OutputBytes > 0 {
		m.outputBytes.Add(float64(c.OutputBytes))
	}
}

// AuditRepository is a domain.AuditRepository that counts failed appends.
type AuditRepository struct {
	domain.AuditRepository
	m *Metrics
}

var _ domain.AuditRepository = AuditRepository{}

// AuditRepository wraps r.
func (m *Metrics) AuditRepository(r domain.AuditRepository) AuditRepository {
	return AuditRepository{AuditRepository: r, m: m}
}

// AppendAudit appends entries, counting them as failed if it fails.
func (r AuditRepository) AppendAudit(ctx context.Context, entries ...*domain.AuditEntry) error {
	err := r.AuditRepository.AppendAudit(ctx, entries...)
	if err != nil {
		r.m.auditFailures.Add(float64(len(entries)))
	}
	return err
}
