package resolvers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/rdev-hq/rdev/domain"
)

// errorPresenter maps every resolver error to a client-facing error once:
// domain errors keep their message and carry their code in extensions.code;
// errors gqlgen raises about the request itself (bad arguments, bad
// variables) keep their message as INVALID_INPUT unless they carry a code;
// errors about a limit (extensions.limit) are INVALID_INPUT; a resolver that
// failed because the operation ran out of time is UNAVAILABLE; anything else
// is logged with the request ID and shown as "internal error". An
// UNAVAILABLE domain error (an outage: storage down, say) is logged as a
// warning with its cause and carries extensions.retryAfterSeconds.
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
			if derr.Code == domain.EUNAVAILABLE {
				log.WarnContext(ctx, "unavailable", "err", err, "path", gerr.Path.String(), "request_id", requestID(ctx))
				gerr.Extensions["retryAfterSeconds"] = int(retryUnavailable / time.Second)
				// The HTTP response becomes a 503 with Retry-After.
				noteUnavailable(ctx, err, gerr.Path)
			}
		case isRequestError(err):
			presentRequestError(gerr)
		case introspectionDisabled(err):
			gerr.Message = "introspection is disabled on this server (RDEV_INTROSPECTION)"
			gerr.Extensions = nil
			setCode(gerr, domain.EINVALID)
		case timedOut(ctx):
			te, _ := operationTimedOut(ctx)
			gerr.Message = te.Error()
			gerr.Extensions = map[string]any{"code": domain.EUNAVAILABLE, "limit": limitNameTimeout}
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

// presentRequestError gives gqlgen's own complaints a code: the limits are
// INVALID_INPUT (gqlgen files the validation rules' errors under its own
// code), and a request error without a code is INVALID_INPUT too.
func presentRequestError(gerr *gqlerror.Error) {
	code, _ := gerr.Extensions["code"].(string)
	switch {
	case gerr.Extensions["limit"] != nil:
		setCode(gerr, domain.EINVALID)
	case code == errcode.ParseFailed && strings.HasPrefix(gerr.Message, "exceeded token limit"):
		gerr.Message += " (RDEV_PARSER_TOKEN_LIMIT)"
		gerr.Extensions["limit"] = limitNameTokens
		setCode(gerr, domain.EINVALID)
	case strings.HasPrefix(gerr.Message, "json request body could not be decoded"):
		// gqlgen's message quotes the whole body and Go's type names.
		if strings.Contains(gerr.Message, "cannot unmarshal array") {
			gerr.Message = "batched operations (a JSON array) are not supported: send one operation per request"
		} else {
			gerr.Message = "request body is not a GraphQL request: a JSON object with query, and optionally operationName, variables and extensions"
		}
		setCode(gerr, domain.EINVALID)
	case code == "":
		setCode(gerr, domain.EINVALID)
	}
}

// introspectionDisabled reports whether err is gqlgen's refusal of __schema
// or __type when introspection is off.
func introspectionDisabled(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == "introspection disabled" {
			return true
		}
	}
	return false
}

func timedOut(ctx context.Context) bool {
	_, ok := operationTimedOut(ctx)
	return ok
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
