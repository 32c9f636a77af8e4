package domain

import "context"

// TraceContext is a W3C trace context: the traceparent and tracestate
// headers of the operation that asked for some work. It is stored with
// commands and webhook messages, so that work done later, or by another rdev
// process, joins the trace of the request that caused it. Both are "" when
// there is no trace.
type TraceContext struct {
	Parent string
	State  string
}

// CommandTracer is how the domain takes part in tracing without knowing the
// tracing library.
type CommandTracer interface {
	// TraceContext returns the trace context of ctx's current span (zero
	// when it has none).
	TraceContext(ctx context.Context) TraceContext
	// StartCommand starts the span of c's life, from its creation (it
	// covers the time c was queued) under c's stored trace context, and
	// returns the context to run c in and the function that ends the span
	// with c's final state; end is called once, with the command as it
	// ended.
	StartCommand(ctx context.Context, c *Command) (_ context.Context, end func(final *Command))
}

// NopCommandTracer traces nothing.
type NopCommandTracer struct{}

var _ CommandTracer = NopCommandTracer{}

// TraceContext returns the zero trace context.
func (NopCommandTracer) TraceContext(context.Context) TraceContext { return TraceContext{} }

// StartCommand returns ctx and an end that does nothing.
func (NopCommandTracer) StartCommand(ctx context.Context, _ *Command) (context.Context, func(*Command)) {
	return ctx, func(*Command) {}
}
