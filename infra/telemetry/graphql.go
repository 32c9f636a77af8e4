package telemetry

import (
	"context"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
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

// observedKey marks an operation's context once InterceptOperation has
// taken it, so InterceptResponse counts only requests that never became an
// operation (unparsable, invalid, refused documents).
type observedKey struct{}

// InterceptOperation counts the operation when its first response is ready,
// by that response's outcome. A subscription is running from here until its
// responses end or its context does.
func (g GraphQL) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	start := time.Now()
	typ, name := g.operation(ctx)
	var end func()
	if typ == "subscription" {
		g.m.subsActive.Inc()
		var once sync.Once
		dec := func() { once.Do(g.m.subsActive.Dec) }
		stop := context.AfterFunc(ctx, dec)
		end = func() { stop(); dec() }
	}
	responses := next(context.WithValue(ctx, observedKey{}, true))
	first := true
	return func(ctx context.Context) *graphql.Response {
		r := responses(ctx)
		if first {
			first = false
			g.observe(typ, name, r, time.Since(start))
		}
		if r == nil && end != nil {
			end()
		}
		return r
	}
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
	g.m.gqlOperations.WithLabelValues(typ, name, code).Inc()
	if code == "RATE_LIMITED" {
		g.m.rateLimited.WithLabelValues("graphql").Inc()
	}
	if took > 0 && typ != "subscription" {
		g.m.gqlDuration.WithLabelValues(typ, name).Observe(took.Seconds())
	}
}

// errorCode is e's extensions.code, or "" (counted as "other").
func errorCode(e *gqlerror.Error) string {
	if e == nil {
		return ""
	}
	c, _ := e.Extensions["code"].(string)
	return c
}
