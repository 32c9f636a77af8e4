package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

// benchHandler serves gqlgen's test schema at /graphql with ext, wrapped in
// middleware; neither when nil.
func benchHandler(ext graphql.HandlerExtension, middleware func(http.Handler) http.Handler) http.Handler {
	srv := testserver.New()
	srv.AddTransport(transport.POST{})
	if ext != nil {
		srv.Use(ext)
	}
	mux := http.NewServeMux()
	mux.Handle("/graphql", srv)
	if middleware == nil {
		return mux
	}
	return middleware(mux)
}

// benchQueries sends one query to h per iteration and returns its ns/op.
func benchQueries(b *testing.B, h http.Handler) float64 {
	const body = `{"query":"query Names { name }"}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N)
}

// BenchmarkInstrumentation compares one GraphQL query through gqlgen's test
// schema without metrics, and with the HTTP middleware and the GraphQL
// extension, in the same run.
func BenchmarkInstrumentation(b *testing.B) {
	b.Run("Bare", func(b *testing.B) { benchQueries(b, benchHandler(nil, nil)) })
	b.Run("Instrumented", func(b *testing.B) {
		m := telemetry.New()
		benchQueries(b, benchHandler(m.GraphQL(), m.Middleware))
	})
}

// BenchmarkTracing runs the same query bare, with tracing off (the HTTP
// middleware on the no-op provider rdev uses without an OTLP endpoint,
// which then leaves the GraphQL extension out) and with tracing on (every span sampled and
// batched to an exporter that drops them). The tracing cases also report
// their time as a multiple of the Bare case's of the same run ("x-bare").
func BenchmarkTracing(b *testing.B) {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	var bare float64 // ns/op of the Bare case, which runs first
	b.Run("Bare", func(b *testing.B) { bare = benchQueries(b, benchHandler(nil, nil)) })
	for name, t := range map[string]*telemetry.Tracing{
		"Off": telemetry.NewTracingFor(noop.NewTracerProvider()),
		"On":  telemetry.NewTracingFor(sdk),
	} {
		b.Run(name, func(b *testing.B) {
			var ext graphql.HandlerExtension // as rdev wires it: only where spans record
			if t.Records() {
				ext = t.GraphQL()
			}
			if perOp := benchQueries(b, benchHandler(ext, t.Middleware)); bare > 0 {
				b.ReportMetric(perOp/bare, "x-bare")
			}
		})
	}
}
