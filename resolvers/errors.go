package resolvers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/rdev-hq/rdev/domain"
)

// errorPresenter maps every resolver error to a client-facing error once:
// domain errors keep their message and carry their code in extensions.code;
// errors gqlgen raises about the request itself (bad arguments, bad
// variables) keep their message as INVALID_INPUT unless they carry a code;
// anything else is logged with the request ID and shown as "internal error".
func errorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		gerr := graphql.DefaultErrorPresenter(ctx, err)
		var derr *domain.Error
		switch {
		case errors.As(err, &derr):
			gerr.Message = derr.Message
			setCode(gerr, derr.Code)
			var rerr *domain.RateLimitError
			if errors.As(err, &rerr) {
				gerr.Extensions["retryAfterSeconds"] = int(rerr.RetryAfter / time.Second)
				// The HTTP response says so too, in Retry-After.
				rateRequestFrom(ctx).refused(err)
			}
		case isRequestError(err):
			if _, ok := gerr.Extensions["code"]; !ok {
				setCode(gerr, domain.EINVALID)
			}
		default:
			log.ErrorContext(ctx, "internal error",
				"err", err, "path", gerr.Path.String(), "request_id", requestID(ctx))
			gerr.Message = domain.ErrorMessage(err)
			gerr.Extensions = nil
			setCode(gerr, domain.EINTERNAL)
		}
		return gerr
	}
}

// isRequestError reports whether err is gqlgen's own complaint about the
// request (such as an argument that does not coerce), not a failure inside a
// resolver.
func isRequestError(err error) bool {
	var gerr *gqlerror.Error
	return errors.As(err, &gerr) && gerr.Err == nil
}

func setCode(e *gqlerror.Error, code string) {
	if e.Extensions == nil {
		e.Extensions = map[string]any{}
	}
	e.Extensions["code"] = code
}

// recoverFunc turns a panic in a resolver into an internal error, logged with
// its stack, so one bad request never takes the server down.
func recoverFunc(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "panic in resolver",
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()), "request_id", requestID(ctx))
		return errors.New("panic in resolver")
	}
}

func requestID(ctx context.Context) string {
	if c := domain.CallerFromContext(ctx); c != nil {
		return c.RequestID
	}
	return ""
}
