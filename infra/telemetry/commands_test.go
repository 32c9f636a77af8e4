package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/hub"
	"github.com/rdev-hq/rdev/infra/telemetry"
)

func TestHub_Publish(t *testing.T) {
	m := telemetry.New()
	inner := hub.New()
	h := m.Hub(inner)
	sub := inner.Subscribe(domain.CommandTopic("c1"), 0)
	defer sub.Close()

	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	finished := started.Add(1500 * time.Millisecond)
	c := &domain.Command{ID: "c1", ProjectID: "p", Status: domain.CommandRunning, StartedAt: &started}
	h.Publish(domain.CommandTopic(c.ID), domain.Event{Kind: domain.EventStatus, CommandID: c.ID, Command: c})

	done := *c
	done.Status, done.FinishedAt, done.OutputBytes = domain.CommandFailed, &finished, 4096
	e := domain.Event{Kind: domain.EventStatus, CommandID: c.ID, Command: &done}
	// As the dispatcher does: to the command's topic and its project's.
	h.Publish(domain.CommandTopic(c.ID), e)
	h.Publish(domain.ProjectTopic(c.ProjectID), e)

	if got := testutil.ToFloat64(m.CommandsFinished().WithLabelValues("FAILED")); got != 1 {
		t.Errorf("FAILED commands = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.OutputBytes()); got != 4096 {
		t.Errorf("output bytes = %v, want 4096", got)
	}
	if n := histogramCount(t, m.CommandDuration(), "FAILED"); n != 1 {
		t.Errorf("durations observed = %d, want 1", n)
	}
	if n := testutil.CollectAndCount(m.CommandsFinished()); n != 1 {
		t.Errorf("status series = %d, want 1 (RUNNING is not an end)", n)
	}
	// The events still reach subscribers.
	for i := range 2 {
		select {
		case got := <-sub.Events():
			if got.Command.Status != []domain.CommandStatus{domain.CommandRunning, domain.CommandFailed}[i] {
				t.Errorf("event %d: %s", i, got.Command.Status)
			}
		default:
			t.Fatalf("event %d not delivered", i)
		}
	}
}

// audits is a domain.AuditRepository whose appends fail with err.
type audits struct {
	domain.AuditRepository
	err error
}

func (a audits) AppendAudit(context.Context, ...*domain.AuditEntry) error { return a.err }

func TestAuditRepository_AppendAudit(t *testing.T) {
	m := telemetry.New()
	if err := m.AuditRepository(audits{}).AppendAudit(t.Context(), &domain.AuditEntry{}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.AuditFailures()); got != 0 {
		t.Errorf("failures after a good append = %v", got)
	}
	err := m.AuditRepository(audits{err: domain.Errorf(domain.EINTERNAL, "disk full")}).AppendAudit(t.Context(), &domain.AuditEntry{}, &domain.AuditEntry{})
	if domain.ErrorCode(err) != domain.EINTERNAL {
		t.Errorf("err = %v, want it passed on", err)
	}
	if got := testutil.ToFloat64(m.AuditFailures()); got != 2 {
		t.Errorf("failures = %v, want 2", got)
	}
}

func TestMetrics_ObserveWebhookDelivery(t *testing.T) {
	m := telemetry.New()
	m.ObserveWebhookDelivery("delivered", 20*time.Millisecond)
	m.ObserveWebhookDelivery("failed", time.Second)
	m.ObserveWebhookDelivery("delivered", 30*time.Millisecond)
	if got := testutil.ToFloat64(m.WebhookDeliveries().WithLabelValues("delivered")); got != 2 {
		t.Errorf("delivered = %v, want 2", got)
	}
}
