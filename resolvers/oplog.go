package resolvers

import (
	"context"
	"log/slog"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/rdev-hq/rdev/domain"
)

// logOperations logs each GraphQL operation at debug level once its first
// response is ready: its name and type, the key (by ID), the request ID, how
// long it took, and the codes of its errors. It never logs the document or
// the variables, where secrets travel.
func logOperations(log *slog.Logger) graphql.OperationMiddleware {
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if !log.Enabled(ctx, slog.LevelDebug) {
			return next(ctx)
		}
		start := time.Now()
		h := next(ctx)
		logged := false
		return func(ctx context.Context) *graphql.Response {
			resp := h(ctx)
			if logged {
				return resp
			}
			logged = true
			attrs := []any{"duration", time.Since(start).Round(time.Microsecond), "request_id", requestID(ctx)}
			if oc := graphql.GetOperationContext(ctx); oc != nil {
				attrs = append(attrs, "operation", clip(oc.OperationName, 64))
				if oc.Operation != nil {
					attrs = append(attrs, "type", string(oc.Operation.Operation))
				}
			}
			if c := domain.CallerFromContext(ctx); c != nil && c.Key != nil {
				attrs = append(attrs, "key", c.Key.ID)
			}
			if resp != nil && len(resp.Errors) > 0 {
				codes := make([]string, 0, len(resp.Errors))
				for _, e := range resp.Errors {
					if code, ok := e.Extensions["code"].(string); ok {
						codes = append(codes, code)
					}
				}
				attrs = append(attrs, "error_codes", codes)
			}
			log.DebugContext(ctx, "graphql operation", attrs...)
			return resp
		}
	}
}
