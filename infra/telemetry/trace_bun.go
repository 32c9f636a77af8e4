package telemetry

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/schema"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// maxQueryText bounds the query text a span keeps.
const maxQueryText = 4096

// QueryHook returns a bun query hook that gives every query made inside a
// recorded span (a request's, a command's) a client span of its own, with
// the query's text as the statement with its placeholders, never the values
// bound to them. Queries outside a trace, such as the dispatcher's polling
// of the queue, get none: they would be a root span each, every second.
func (t *Tracing) QueryHook() bun.QueryHook { return queryHook{t: t} }

type queryHook struct{ t *Tracing }

// BeforeQuery starts the query's span.
func (h queryHook) BeforeQuery(ctx context.Context, e *bun.QueryEvent) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	name := e.Operation()
	if e.IQuery != nil {
		if table := e.IQuery.GetTableName(); table != "" {
			name += " " + strings.Trim(table, `"`)
		}
	}
	ctx, _ = h.t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(e.StartTime))
	e.Stash = map[any]any{queryHook{}: true}
	return ctx
}

// AfterQuery ends the span BeforeQuery started.
func (h queryHook) AfterQuery(ctx context.Context, e *bun.QueryEvent) {
	if e.Stash[queryHook{}] == nil {
		return
	}
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(
		attribute.String("db.system.name", dbSystem(e.DB)),
		attribute.String("db.operation.name", e.Operation()),
		attribute.String("db.query.text", queryText(e)),
	)
	if e.Err != nil && !errors.Is(e.Err, sql.ErrNoRows) {
		span.RecordError(e.Err)
		span.SetStatus(codes.Error, "query failed")
	}
	span.End()
}

func dbSystem(db *bun.DB) string {
	if db == nil {
		return "other_sql"
	}
	switch db.Dialect().Name() {
	case dialect.PG:
		return "postgresql"
	case dialect.SQLite:
		return "sqlite"
	case dialect.Invalid, dialect.MySQL, dialect.MSSQL, dialect.Oracle:
	}
	return "other_sql"
}

// queryText is e's query with "?" where its values go: a query built with
// bun's builder is rendered again without them, a raw one is its template.
func queryText(e *bun.QueryEvent) string {
	q := e.QueryTemplate
	if e.IQuery != nil {
		if b, err := e.IQuery.AppendQuery(schema.NewNopQueryGen(), nil); err == nil {
			q = string(b)
		}
	}
	if len(q) > maxQueryText {
		q = strings.ToValidUTF8(q[:maxQueryText], "")
	}
	return q
}
