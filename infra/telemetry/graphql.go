package telemetry

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// GraphQL is a gqlgen extension that counts and times operations and keeps
// the count of running subscriptions. Add it before every other extension
// and operation interceptor, so it sees the answers they give too (a key's
// rate limit, a refused document).
type GraphQL struct{ m *Metrics }

var (
	_ graphql.HandlerExtension     = GraphQL{}
	_ graphql.OperationInterceptor = GraphQL{}
	_ graphql.ResponseInterceptor  = GraphQL{}
)

// GraphQL returns the extension that feeds m.
func (m *Metrics) GraphQL() GraphQL { return GraphQL{m: m} }

// ExtensionName names the extension for gqlgen.
func (GraphQL) ExtensionName() string { return "RdevMetrics" }

// Validate accepts every schema.
func (GraphQL) Validate(graphql.ExecutableSchema) error { return nil }

// observedKey asks an operation's context for the observedOperation that
// counts it, so InterceptResponse counts only requests that never became
// an operation (unparsable, invalid, refused documents).
type observedKey struct{}

// InterceptOperation counts the operation when its first response is ready,
// by that response's outcome. A subscription is running from here until its
// responses end or its context does.
func (g GraphQL) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	o := &observedOperation{Context: ctx, g: g, start: time.Now()}
	o.typ, o.name = g.operation(ctx)
	if o.typ == "subscription" {
		g.m.subsActive.Inc()
		o.stop = context.AfterFunc(ctx, o.end)
	}
	o.responses = next(o)
	return o.respond
}

// InterceptResponse counts the requests that failed before they became an
// operation; operations are counted by InterceptOperation.
func (g GraphQL) InterceptResponse(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	r := next(ctx)
	if ctx.Value(observedKey{}) == nil {
		typ, name := g.operation(ctx)
		g.observe(typ, name, r, 0)
	}
	return r
}

// observedOperation is one operation InterceptOperation counts, and the
// context it runs on: being both spares an allocation per operation, and
// its Value tells InterceptResponse that the operation is counted already.
type observedOperation struct {
	context.Context
	g         GraphQL
	typ, name string
	start     time.Time
	responses graphql.ResponseHandler
	// answered is set once the first response is counted.
	answered bool
	// stop and ended end a subscription's count once, at its last response
	// or when its context ends; stop is nil for other operations.
	stop  func() bool
	ended atomic.Bool
}

// Value returns o itself for observedKey, and the parent's values for
// every other key.
func (o *observedOperation) Value(key any) any {
	if _, ok := key.(observedKey); ok {
		return o
	}
	return o.Context.Value(key)
}

// respond passes on the operation's responses, counting the first, and
// ends a subscription's count at the last.
func (o *observedOperation) respond(ctx context.Context) *graphql.Response {
	r := o.responses(ctx)
	if !o.answered {
		o.answered = true
		o.g.observe(o.typ, o.name, r, time.Since(o.start))
	}
	if r == nil && o.stop != nil {
		o.stop()
		o.end()
	}
	return r
}

// end counts a subscription as no longer running, the first time it is
// called.
func (o *observedOperation) end() {
	if o.ended.CompareAndSwap(false, true) {
		o.g.m.subsActive.Dec()
	}
}

// operation returns the bounded type and name labels of ctx's operation:
// "unknown" and "other" when it has none (yet), "anonymous" for an
// operation without a name.
func (g GraphQL) operation(ctx context.Context) (typ, name string) {
	if !graphql.HasOperationContext(ctx) {
		return "unknown", "other"
	}
	oc := graphql.GetOperationContext(ctx)
	if oc == nil || oc.Operation == nil {
		return "unknown", "other"
	}
	switch oc.Operation.Operation {
	case "query", "mutation", "subscription":
		typ = string(oc.Operation.Operation)
	default:
		typ = "unknown"
	}
	if oc.Operation.Name == "" {
		return typ, "anonymous"
	}
	return typ, g.m.opNames.value(oc.Operation.Name)
}

// observe records one answered operation. A zero took is not timed (a
// request refused before it ran); nor is a subscription's, whose first
// event's time says nothing about rdev.
func (g GraphQL) observe(typ, name string, r *graphql.Response, took time.Duration) {
	code := "OK"
	if r != nil && len(r.Errors) > 0 {
		code = g.m.codes.value(errorCode(r.Errors[0]))
	}
	key := operationKey{typ, name}
	g.m.operationsBy.get(outcomeKey{key, code}).Inc()
	if code == "RATE_LIMITED" {
		g.m.rateLimited.WithLabelValues("graphql").Inc()
	}
	if took > 0 && typ != "subscription" {
		g.m.opDurationBy.get(key).Observe(took.Seconds())
	}
}

// operationKey is the labels of an operation's duration: its type and
// name.
type operationKey struct{ typ, name string }

// outcomeKey is the labels of an operation's count: its type, name and
// outcome code.
type outcomeKey struct {
	operationKey
	code string
}

// operationCounter returns the gqlOperations child for k.
func (m *Metrics) operationCounter(k outcomeKey) prometheus.Counter {
	return m.gqlOperations.WithLabelValues(k.typ, k.name, k.code)
}

// operationObserver returns the gqlDuration child for k.
func (m *Metrics) operationObserver(k operationKey) prometheus.Observer {
	return m.gqlDuration.WithLabelValues(k.typ, k.name)
}

// errorCode is e's extensions.code, or "" (counted as "other").
func errorCode(e *gqlerror.Error) string {
	if e == nil {
		return ""
	}
	c, _ := e.Extensions["code"].(string)
	return c
}
