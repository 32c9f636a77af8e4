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
	"github.com/vektah/gqlparser/v2/ast"
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

// BenchmarkMetricsOverhead measures what the metrics add to one request on
// the hot path, from parallel clients: the HTTP middleware and the GraphQL
// extension around a handler that plays one named query through the
// extension's interceptors, as gqlgen's executor does, and does no GraphQL
// work of its own. "Bare" plays it through interceptors that do nothing,
// without the middleware, so the difference is the metrics' own.
func BenchmarkMetricsOverhead(b *testing.B) {
	b.Run("Bare", func(b *testing.B) { benchOperations(b, operationHandler(passThrough{})) })
	b.Run("Metrics", func(b *testing.B) {
		m := telemetry.New()
		benchOperations(b, m.Middleware(operationHandler(m.GraphQL())))
	})
}

// interceptors is what a gqlgen extension that observes operations and
// responses implements.
type interceptors interface {
	graphql.OperationInterceptor
	graphql.ResponseInterceptor
}

// passThrough is interceptors that only call on.
type passThrough struct{}

func (passThrough) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	return next(ctx)
}

func (passThrough) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	return next(ctx)
}

// operationHandler serves POST /graphql by playing one query, "query
// Projects", through ext's interceptors and writing its fixed JSON answer.
func operationHandler(ext interceptors) http.Handler {
	oc := &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Query, Name: "Projects"}}
	answer := &graphql.Response{Data: []byte(`{"data":{"projects":{"nodes":[]}}}`)}
	jsonType := []string{"application/json"}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /graphql", func(w http.ResponseWriter, r *http.Request) {
		resp := playOperation(graphql.WithOperationContext(r.Context(), oc), ext, answer)
		w.Header()["Content-Type"] = jsonType
		_, _ = w.Write(resp.Data)
	})
	return mux
}

// playOperation runs an operation whose one response is answer through
// ext's interceptors as gqlgen's executor and transports do: the response
// handler the operation interceptor returns is called with the context the
// operation went on with, and passes each response through the response
// interceptor.
func playOperation(ctx context.Context, ext interceptors, answer *graphql.Response) *graphql.Response {
	respond := func(context.Context) *graphql.Response { return answer }
	opCtx := ctx
	responses := ext.InterceptOperation(ctx, func(ctx context.Context) graphql.ResponseHandler {
		opCtx = ctx
		return func(ctx context.Context) *graphql.Response { return ext.InterceptResponse(ctx, respond) }
	})
	return responses(opCtx)
}

// benchOperations sends POST /graphql to h from parallel clients, each with
// a request and a response writer of its own that it reuses, so the ns/op
// and allocs/op are h's.
func benchOperations(b *testing.B, h http.Handler) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", http.NoBody)
		w := &discardWriter{header: http.Header{}}
		for pb.Next() {
			h.ServeHTTP(w, req)
		}
	})
}

// discardWriter is a response writer that drops what it is sent.
type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}
