package telemetry_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

// BenchmarkTracing runs one GraphQL query through gqlgen's test schema bare,
// with tracing off (the HTTP middleware and the GraphQL extension on the
// no-op provider rdev uses without an OTLP endpoint) and with tracing on
// (every span sampled and batched to an exporter that drops them). Each
// tracing case also reports its time as a multiple of the bare handler's
// ("x-bare"), against the Bare case of the same run.
func BenchmarkTracing(b *testing.B) {
	newHandler := func(tp trace.TracerProvider) http.Handler {
		srv := testserver.New()
		srv.AddTransport(transport.POST{})
		mux := http.NewServeMux()
		mux.Handle("/graphql", srv)
		if tp == nil {
			return mux
		}
		t := telemetry.NewTracingFor(tp)
		srv.Use(t.GraphQL())
		return t.Middleware(mux)
	}
	loop := func(b *testing.B, h http.Handler) {
		const body = `{"query":"query Names { name }"}`
		for b.Loop() {
			req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	}
	var bare float64 // ns/op of the Bare case, which runs first
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	for _, bc := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"Bare", nil}, {"Off", noop.NewTracerProvider()}, {"On", sdk}} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHandler(bc.tp)
			b.ReportAllocs()
			loop(b, h)
			perOp := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			switch {
			case bc.tp == nil:
				bare = perOp
			case bare > 0:
				b.ReportMetric(perOp/bare, "x-bare")
			}
		})
	}
}
