package telemetry_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

// BenchmarkInstrumentation compares one GraphQL query through gqlgen's test
// schema without metrics, and with the HTTP middleware and the GraphQL
// extension, in the same run.
func BenchmarkInstrumentation(b *testing.B) {
	newHandler := func(instrument bool) http.Handler {
		srv := testserver.New()
		srv.AddTransport(transport.POST{})
		mux := http.NewServeMux()
		mux.Handle("/graphql", srv)
		if !instrument {
			return mux
		}
		m := telemetry.New()
		srv.Use(m.GraphQL())
		return m.Middleware(mux)
	}
	for _, bc := range []struct {
		name       string
		instrument bool
	}{{"Bare", false}, {"Instrumented", true}} {
		b.Run(bc.name, func(b *testing.B) {
			h := newHandler(bc.instrument)
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
		})
	}
}
