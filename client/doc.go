// Package client drives an rdev server from Go the way the rdev CLI does:
// it runs commands (Execute), cancels them (Cancel), reads them (Command),
// streams their output to the end (Tail), and manages API keys (CreateKey,
// Keys, RevokeKey).
//
// Queries and mutations go as GraphQL over HTTP POST; output streams over
// a WebSocket with the graphql-transport-ws protocol. A Client holds no
// connection between calls and is safe for concurrent use.
//
// # Failures
//
// A failure worth retrying (the network, a server that is starting or
// stopping, a database that is down: UNAVAILABLE, HTTP 503, WebSocket close
// codes 1013, 1001 and 1006, a refused rate-limit charge: RATE_LIMITED) is
// retried with backoff until it has gone on for Retry.GiveUp without
// progress. That is safe: Execute carries an idempotency token, cancelling
// twice cancels once, and Tail resumes after the last chunk it delivered.
// What the server decides is final and returned at once as an *Error
// carrying its extensions.code (UNAUTHENTICATED, FORBIDDEN, NOT_FOUND,
// INVALID_INPUT, CONFLICT, …), so callers can branch with ErrorCode. A
// server that cannot be reached on first contact is ErrUnreachable at once,
// rather than after minutes of retries.
package client
