package client

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"
)

// Error is an error the server reported in a GraphQL response: its message
// and its extensions.code, such as UNAUTHENTICATED, FORBIDDEN, NOT_FOUND,
// INVALID_INPUT, CONFLICT, RATE_LIMITED or UNAVAILABLE.
type Error struct {
	Code    string
	Message string
	// RetryAfter is the server's hint of when to try again (RATE_LIMITED,
	// UNAVAILABLE); 0 if it gave none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// ErrorCode returns the server's extensions.code for err, or "" if err is
// not an error the server reported.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// CloseError is a WebSocket closed by the server with a 44xx code: it
// refused the connection (4403: a key missing, unknown, revoked, expired or
// rotated away; 4429: too many connections). It is final.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("the server closed the connection: %s (%d)", e.Reason, e.Code)
}

// ErrUnreachable is wrapped by the error of a call that could not connect
// to the server at all (connection refused, unknown host) before this
// Client ever reached it: most likely no server runs at that address.
// Once a Client has reached its server, the same failures are retried as
// an outage.
var ErrUnreachable = errors.New("cannot reach rdev")

// unreachableError says which server could not be reached.
type unreachableError struct {
	url string
	err error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach rdev at %s: is `rdev serve` running? (%v)", e.url, e.err)
}

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }

// Unwrap returns the dial error.
func (e *unreachableError) Unwrap() error { return e.err }

// refused reports whether err is a connection that never got going: the
// address refused it or does not resolve.
func refused(err error) bool {
	var dns *net.DNSError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &dns) && dns.IsNotFound)
}

// transientError is a failure worth retrying (see the package doc). after
// is the server's hint of when to try again, if it gave one.
type transientError struct {
	err   error
	after time.Duration
}

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// Retryable reports whether err is a failure worth trying again later: a
// network failure, an outage or a refused rate-limit charge that went on
// past the Client's own retries. Tail's caller can resume with AfterSeq
// set to the last seq it received.
func Retryable(err error) bool { return errors.As(err, new(transientError)) }

// retryAfter returns the server's hint of when to retry err, or 0.
func retryAfter(err error) time.Duration {
	var te transientError
	if errors.As(err, &te) {
		return te.after
	}
	return 0
}

// gqlError is an error in a GraphQL response.
type gqlError struct {
	Message    string `json:"message"`
	Extensions struct {
		Code              string `json:"code"`
		RetryAfterSeconds int    `json:"retryAfterSeconds"`
	} `json:"extensions"`
}

// graphQLError turns a GraphQL errors array into one error (the first):
// transient if the server is UNAVAILABLE or refused a rate-limit charge,
// final otherwise.
func graphQLError(errs []*gqlError) error {
	if len(errs) == 0 {
		return nil
	}
	if errs[0] == nil {
		return errors.New("the server reported an error without a message")
	}
	e := &Error{Code: errs[0].Extensions.Code, Message: errs[0].Message,
		RetryAfter: time.Duration(errs[0].Extensions.RetryAfterSeconds) * time.Second}
	if e.Code == "UNAVAILABLE" || e.Code == "RATE_LIMITED" {
		return transientError{e, e.RetryAfter}
	}
	return e
}
