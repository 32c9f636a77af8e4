package telemetry

import (
	"context"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/rdev-hq/rdev/domain"
)

// GraphQLTracing is a gqlgen extension that gives every operation a span,
// "graphql.operation <name>", and, below it, every field that has a
// resolver of its own ("graphql.resolve Mutation.executeCommand"); fields
// read off a parent object and introspection get none. Add it before every
// other extension, so that its span covers what they do.
type GraphQLTracing struct{ t *Tracing }

var (
	_ graphql.HandlerExtension     = GraphQLTracing{}
	_ graphql.OperationInterceptor = GraphQLTracing{}
	_ graphql.FieldInterceptor     = GraphQLTracing{}
)

// GraphQL returns the extension that traces operations and resolvers.
func (t *Tracing) GraphQL() GraphQLTracing { return GraphQLTracing{t: t} }

// ExtensionName names the extension for gqlgen.
func (GraphQLTracing) ExtensionName() string { return "RdevTracing" }

// Validate accepts every schema.
func (GraphQLTracing) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation starts the operation's span. A query's or mutation's
// ends with its response, a subscription's when its responses end or its
// context does. The first error's extensions.code sets the span's status.
func (g GraphQLTracing) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	typ, name := "unknown", ""
	if oc := graphql.GetOperationContext(ctx); oc != nil && oc.Operation != nil {
		typ, name = string(oc.Operation.Operation), oc.Operation.Name
	}
	spanName := "graphql.operation " + name
	if name == "" {
		spanName = "graphql.operation " + typ
	}
	ctx, span := g.t.tracer.Start(ctx, spanName)
	if !span.IsRecording() {
		return next(ctx)
	}
	span.SetAttributes(attribute.String("graphql.operation.type", typ))
	if name != "" {
		span.SetAttributes(attribute.String("graphql.operation.name", name))
	}
	var once sync.Once
	end := func() { once.Do(func() { span.End() }) }
	stop := context.AfterFunc(ctx, end)
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		r := responses(ctx)
		if r != nil && len(r.Errors) > 0 {
			code := errorCode(r.Errors[0])
			span.SetAttributes(attribute.String("rdev.error.code", code))
			span.SetStatus(codes.Error, code)
		}
		if r == nil || typ != "subscription" {
			stop()
			end()
		}
		return r
	}
}

// InterceptField gives a field with a resolver of its own a span, with the
// error code as its status when it fails.
func (g GraphQLTracing) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !fc.IsResolver || fc.Field.Field == nil || strings.HasPrefix(fc.Field.Name, "__") || strings.HasPrefix(fc.Object, "__") {
		return next(ctx)
	}
	ctx, span := g.t.tracer.Start(ctx, "graphql.resolve "+fc.Object+"."+fc.Field.Name)
	defer span.End()
	res, err := next(ctx)
	if err != nil && span.IsRecording() {
		code := domain.ErrorCode(err)
		span.SetAttributes(attribute.String("rdev.error.code", code))
		span.SetStatus(codes.Error, code)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.String("graphql.field.path", fc.Path().String()))
	}
	return res, err
}
