package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

func TestLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "test")
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(context.Background(), "op")
	defer span.End()

	record := func(ctx context.Context) map[string]any {
		t.Helper()
		buf.Reset()
		log.InfoContext(ctx, "hello", "request_id", "r1")
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("%v: %s", err, buf.String())
		}
		return m
	}
	t.Run("InSpan", func(t *testing.T) {
		m := record(ctx)
		sc := span.SpanContext()
		if m["trace_id"] != sc.TraceID().String() || m["span_id"] != sc.SpanID().String() {
			t.Errorf("record %v, want trace_id %s and span_id %s", m, sc.TraceID(), sc.SpanID())
		}
		if m["request_id"] != "r1" || m["component"] != "test" {
			t.Errorf("record %v lost its own attributes", m)
		}
	})
	t.Run("NoSpan", func(t *testing.T) {
		m := record(context.Background())
		if _, ok := m["trace_id"]; ok {
			t.Errorf("record without a span has trace_id: %v", m)
		}
		if _, ok := m["span_id"]; ok {
			t.Errorf("record without a span has span_id: %v", m)
		}
	})
}
