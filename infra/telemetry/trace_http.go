package telemetry

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceparentHeader is the canonical key of the W3C traceparent header.
var traceparentHeader = http.CanonicalHeaderKey("traceparent")

// Middleware gives every request next answers a server span, named by the
// method and the route pattern its http.ServeMux matched ("POST /graphql"),
// never the raw path. A client's traceparent (and tracestate, baggage) makes
// the span its child, in the client's trace. A WebSocket connection or an
// SSE stream is one span for as long as it lasts; the operations on it have
// spans of their own (see GraphQL). Put it outside every other middleware.
// On the no-op provider it only passes a client's trace context on.
func (t *Tracing) Middleware(next http.Handler) http.Handler {
	if t.off {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Only a traceparent makes a trace context worth passing on.
			if _, ok := r.Header[traceparentHeader]; ok {
				if ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)); trace.SpanContextFromContext(ctx).IsValid() {
					r = r.WithContext(ctx)
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		if !span.IsRecording() {
			if span.SpanContext().IsValid() {
				// Not sampled, or not recorded: pass the client's trace on.
				r = r.WithContext(ctx)
			}
			next.ServeHTTP(w, r)
			return
		}
		rw := &responseWriter{ResponseWriter: w}
		r = r.WithContext(ctx)
		next.ServeHTTP(rw, r)
		route, method := routeOf(r, "_OTHER")
		span.SetName(method + " " + trimMethod(route))
		status := rw.code()
		span.SetAttributes(
			attribute.String("http.request.method", method),
			attribute.String("http.route", route),
			attribute.String("url.path", r.URL.Path),
			attribute.Int("http.response.status_code", status),
		)
		if ua := r.UserAgent(); ua != "" {
			span.SetAttributes(attribute.String("user_agent.original", ua))
		}
		if id := w.Header().Get("X-Request-Id"); id != "" {
			span.SetAttributes(attribute.String("rdev.request.id", id))
		}
		if status >= http.StatusInternalServerError {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// trimMethod drops the method from a pattern such as "GET /healthz", which
// the span name already starts with.
func trimMethod(pattern string) string {
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case ' ':
			return pattern[i+1:]
		case '/':
			return pattern
		}
	}
	return pattern
}
