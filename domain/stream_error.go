package domain

import (
	"context"
	"fmt"
)

// A stream (Output and its kin, Events, ProjectService.Watch) delivers on a
// channel, and a closed channel cannot say why it closed: "over" and
// "storage failed halfway" would look alike to the client, which would
// take the second for the first. So a stream that must end early says why
// to its context's report function first.

type streamErrorsKey struct{}

// WithStreamErrors returns a context whose streams, if one must end early
// because storage (or another source) failed, call report with why just
// before they close their channel, at most once. The error is EUNAVAILABLE
// unless it carries a code of its own: a stream can be opened again from
// where it stopped (commandOutput's afterSeq), so its receiver should try
// again. A stream that ends because it is over, or because its context
// ended, reports nothing.
func WithStreamErrors(ctx context.Context, report func(error)) context.Context {
	return context.WithValue(ctx, streamErrorsKey{}, report)
}

// streamFailed reports err as why the stream of ctx ends early, unless ctx
// has ended: its receiver is gone then, and err is most likely ctx's own.
func streamFailed(ctx context.Context, err error) {
	report, _ := ctx.Value(streamErrorsKey{}).(func(error))
	if report == nil || ctx.Err() != nil {
		return
	}
	if ErrorCode(err) == EINTERNAL {
		err = fmt.Errorf("%w: %w", Errorf(EUNAVAILABLE, "reading storage failed mid-stream: subscribe again to resume"), err)
	}
	report(err)
}
