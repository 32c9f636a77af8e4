package telemetry

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingVariables are the environment variables NewTracing reads itself.
// The OTLP exporter and the SDK read the other standard OTEL_* variables
// (headers, timeout, sampler, resource attributes, service name).
var TracingVariables = []string{
	"OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
	"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
}

// instrumentation names rdev's tracer.
const instrumentation = "github.com/rdev-hq/rdev"

// Tracing is rdev's OpenTelemetry tracing: the tracer every span comes from
// and the W3C propagator (tracecontext and baggage) that reads and writes
// trace context at the edges. Its methods give the HTTP middleware, the
// GraphQL extension, the bun query hook and the wrappers of executors,
// webhook senders and Kubernetes transports. Built on a no-op provider it
// records nothing, but still passes a client's trace context through to
// commands and webhook messages.
type Tracing struct {
	tracer    trace.Tracer
	prop      propagation.TextMapPropagator
	shutdown  func(context.Context) error
	exporting bool
	// off is set on the no-op provider, whose spans record nothing: the
	// middleware then only passes trace context on.
	off bool
}

// NewTracing exports spans over OTLP/HTTP (protobuf) when
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set
// and OTEL_SDK_DISABLED is not "true", with a batch span processor; otherwise
// it returns tracing on a no-op provider, which costs next to nothing. The
// exporter and the SDK take the rest of their configuration from the
// standard OTEL_* variables; the resource is service.name "rdev" (or
// OTEL_SERVICE_NAME), service.version version, and OTEL_RESOURCE_ATTRIBUTES.
// Export failures are logged to log.
func NewTracing(ctx context.Context, version string, getenv func(string) string, log *slog.Logger) (*Tracing, error) {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") ||
		(getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "") {
		return NewTracingFor(noop.NewTracerProvider()), nil
	}
	for _, v := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if p := getenv(v); p != "" {
			if p != "http/protobuf" {
				return nil, fmt.Errorf("%s: %q is not supported; rdev exports traces over http/protobuf only", v, p)
			}
			break
		}
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	// Later detectors win: the environment overrides the defaults.
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("rdev"), semconv.ServiceVersion(version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	// The SDK reports export failures through the process-wide handler;
	// send them to rdev's log rather than the standard logger.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("exporting traces", "err", err) }))
	// No sampler is given, so the SDK reads OTEL_TRACES_SAMPLER and
	// OTEL_TRACES_SAMPLER_ARG (default: parentbased_always_on).
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t := NewTracingFor(tp)
	t.shutdown, t.exporting = tp.Shutdown, true
	return t, nil
}

// NewTracingFor returns tracing with spans from tp, such as an SDK provider
// with an in-memory exporter in tests. Shutdown does not shut tp down.
func NewTracingFor(tp trace.TracerProvider) *Tracing {
	_, off := tp.(noop.TracerProvider)
	return &Tracing{
		off:      off,
		tracer:   tp.Tracer(instrumentation),
		prop:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		shutdown: func(context.Context) error { return nil },
	}
}

// Exporting reports whether spans are exported.
func (t *Tracing) Exporting() bool { return t.exporting }

// Records reports whether spans record anything: not on the no-op
// provider. Where they do not, the GraphQL extension would only cost every
// operation and field, and can be left out; the request's trace context,
// which commands and webhook messages carry on, comes from the middleware.
func (t *Tracing) Records() bool { return !t.off }

// Shutdown exports the spans still buffered and stops the exporter; it gives
// up when ctx ends.
func (t *Tracing) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// Propagator returns the propagator that reads and writes trace context
// (W3C tracecontext and baggage).
func (t *Tracing) Propagator() propagation.TextMapPropagator { return t.prop }
