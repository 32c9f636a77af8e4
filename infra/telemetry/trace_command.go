package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rdev-hq/rdev/domain"
)

var _ domain.CommandTracer = (*Tracing)(nil)

// traceContext reads and writes only the W3C trace context headers, which is
// what is stored with commands and webhook messages (baggage is not).
var traceContext = propagation.TraceContext{}

// TraceContext returns the W3C traceparent and tracestate of ctx's span.
func (t *Tracing) TraceContext(ctx context.Context) domain.TraceContext {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return domain.TraceContext{}
	}
	c := propagation.MapCarrier{}
	traceContext.Inject(ctx, c)
	return domain.TraceContext{Parent: c["traceparent"], State: c["tracestate"]}
}

// withTraceContext returns ctx with tc as its remote parent; ctx itself when
// tc is empty or invalid.
func withTraceContext(ctx context.Context, parent, state string) context.Context {
	if parent == "" {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.MapCarrier{"traceparent": parent, "tracestate": state})
}

// StartCommand starts the span "command <type>" of c: from c's creation, so
// it covers the time c was queued, to its end. Its parent is the span of the
// request that queued c, read from c's stored trace context: a child rather
// than a link, because that request is the command's one cause and a child
// keeps the request, the command and its exec in one tree in every trace
// viewer; that the parent ended long before is normal for queued work. A
// command queued outside a trace starts a trace of its own.
func (t *Tracing) StartCommand(ctx context.Context, c *domain.Command) (context.Context, func(*domain.Command)) {
	ctx = withTraceContext(ctx, c.TraceParent, c.TraceState)
	ctx, span := t.tracer.Start(ctx, "command "+string(c.Type),
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithTimestamp(c.CreatedAt))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("rdev.command.id", c.ID),
			attribute.String("rdev.project.id", c.ProjectID),
			attribute.String("rdev.command.type", string(c.Type)),
			attribute.String("rdev.command.priority", c.Priority.String()),
		)
		if c.StartedAt != nil {
			span.AddEvent("started", trace.WithTimestamp(*c.StartedAt))
		}
	}
	return ctx, func(final *domain.Command) {
		if !span.IsRecording() {
			return
		}
		span.SetAttributes(attribute.String("rdev.command.status", string(final.Status)))
		if final.ExitCode != nil {
			span.SetAttributes(attribute.Int("process.exit.code", *final.ExitCode))
		}
		if final.Signal != "" {
			span.SetAttributes(attribute.String("rdev.command.signal", final.Signal))
		}
		if final.Status != domain.CommandSucceeded {
			span.SetStatus(codes.Error, string(final.Status))
		}
		var opts []trace.SpanEndOption
		if final.FinishedAt != nil {
			opts = append(opts, trace.WithTimestamp(*final.FinishedAt))
		}
		span.End(opts...)
	}
}
