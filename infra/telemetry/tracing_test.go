package telemetry_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

func TestNewTracing(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name      string
		env       map[string]string
		exporting bool
		err       string
	}{
		{"NoEndpoint", nil, false, ""},
		{"Endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1"}, true, ""},
		{"TracesEndpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/v1/traces"}, true, ""},
		{"Disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "TRUE"}, false, ""},
		{"GRPC", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, false, "OTEL_EXPORTER_OTLP_PROTOCOL"},
		{"TracesProtocolWins", map[string]string{
			"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
			"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
		}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := telemetry.NewTracing(context.Background(), "test", func(k string) string { return tc.env[k] }, log)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tr.Shutdown(context.Background()) }()
			if tr.Exporting() != tc.exporting {
				t.Errorf("Exporting() = %v, want %v", tr.Exporting(), tc.exporting)
			}
		})
	}
}

// TestTracing_Off: on the no-op provider spans record nothing, so the
// GraphQL extension may be left out, and the middleware still passes a
// client's trace context on to what it serves.
func TestTracing_Off(t *testing.T) {
	tr := telemetry.NewTracingFor(noop.NewTracerProvider())
	if tr.Records() {
		t.Error("Records() = true on the no-op provider")
	}
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tc := range []struct {
		name, traceparent, want string
	}{
		{"ClientTrace", "00-" + traceID + "-00f067aa0ba902b7-01", traceID},
		{"NoTrace", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got string
			h := tr.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				if sc := trace.SpanContextFromContext(r.Context()); sc.IsValid() {
					got = sc.TraceID().String()
				}
			}))
			req := httptest.NewRequest(http.MethodPost, "/graphql", nil)
			if tc.traceparent != "" {
				req.Header.Set("traceparent", tc.traceparent)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if got != tc.want {
				t.Errorf("trace ID seen = %q, want %q", got, tc.want)
			}
		})
	}
	sdk := telemetry.NewTracingFor(sdktrace.NewTracerProvider())
	if !sdk.Records() {
		t.Error("Records() = false on the SDK provider")
	}
}
