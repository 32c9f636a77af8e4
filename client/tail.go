package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Stream is the stream a chunk of output was written to.
type Stream string

// The streams.
const (
	Stdout Stream = "STDOUT"
	Stderr Stream = "STDERR"
)

// Chunk is a numbered piece of a command's output. Seqs count from 1
// across both streams.
type Chunk struct {
	Seq    int    `json:"seq"`
	Stream Stream `json:"stream"`
	Data   string `json:"data"`
}

// Gap reports chunks that were not stored (storage refused them): From to
// To, inclusive.
type Gap struct {
	From, To int
}

// Finished is how a command ended.
type Finished struct {
	Status     Status `json:"status"`
	ExitCode   *int   `json:"exitCode"`
	DurationMs int    `json:"durationMs"`
	// Truncated is set when the output passed the server's cap: its middle
	// was dropped.
	Truncated bool `json:"truncated"`
	// OutputLostBytes counts bytes storage refused for too long.
	OutputLostBytes int64 `json:"outputLostBytes"`
	LastSeq         int   `json:"lastSeq"`
	// Signal is the signal that ended the process, e.g. SIGKILL; "" if
	// none.
	Signal string `json:"signal"`
	// Reason says why it failed, was cancelled, timed out or was
	// interrupted; "" if it exited by itself.
	Reason string `json:"reason"`
}

// TailOptions says which output Tail delivers, and to whom.
type TailOptions struct {
	// AfterSeq skips the chunks up to and including this seq: 0 for all,
	// the last seq received to resume.
	AfterSeq int
	// StopAt, if above 0, ends Tail once the chunk with this seq (or a
	// later one) is delivered, returning a nil *Finished.
	StopAt int
	// OnChunk receives each chunk exactly once, in seq order, however often
	// the connection drops. An error from it ends Tail with that error.
	OnChunk func(Chunk) error
	// OnGap, if set, is told of chunks that were not stored.
	OnGap func(Gap) error
}

// outputSubscription follows one command's output from a seq on.
const outputSubscription = `subscription($id: ID!, $after: Int) {
  commandOutput(commandId: $id, afterSeq: $after) {
    __typename
    ... on OutputChunk { seq stream data }
    ... on OutputGap { afterSeq nextSeq }
    ... on CommandFinished { status exitCode durationMs truncated outputLostBytes lastSeq command { reason signal } }
  }
}`

// Tail streams a command's output, stored and then live, until the
// command ends, and returns how it ended. It survives dropped connections
// and server or database restarts (close codes 1001, 1006, 1013;
// UNAVAILABLE) by subscribing again after the last chunk delivered, and
// gives up after Retry.GiveUp without progress with an error for which
// Retryable is true. Errors: an *Error with NOT_FOUND, FORBIDDEN or
// UNAUTHENTICATED, a *CloseError, ErrUnreachable, ctx's error, or
// OnChunk's.
func (c *Client) Tail(ctx context.Context, commandID string, o TailOptions) (*Finished, error) {
	if o.OnChunk == nil {
		return nil, errNoOnChunk
	}
	t := &tail{id: commandID, last: o.AfterSeq, o: o}
	vars := func() map[string]any { return map[string]any{"id": commandID, "after": t.last} }
	if err := c.subscribe(ctx, outputSubscription, vars, t.event); err != nil {
		return nil, err
	}
	return t.finished, nil
}

// tail is the state of one Tail.
type tail struct {
	id       string
	last     int // the highest seq delivered
	o        TailOptions
	finished *Finished
}

// outputEvent is an OutputChunk, an OutputGap, or the CommandFinished that
// ends the stream.
type outputEvent struct {
	Typename string `json:"__typename"`
	Chunk
	AfterSeq int `json:"afterSeq"`
	NextSeq  int `json:"nextSeq"`
	Finished
	Command struct {
		Reason *string `json:"reason"`
		Signal *string `json:"signal"`
	} `json:"command"`
}

func (t *tail) event(data json.RawMessage) (done bool, err error) {
	var d struct {
		CommandOutput *outputEvent `json:"commandOutput"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.CommandOutput == nil {
		return false, fmt.Errorf("bad commandOutput event from the server: %s", data)
	}
	switch e := d.CommandOutput; e.Typename {
	case "OutputChunk":
		if e.Seq <= t.last {
			return false, nil // delivered before the connection dropped
		}
		if err := t.o.OnChunk(e.Chunk); err != nil {
			return false, err
		}
		t.last = e.Seq
		return t.o.StopAt > 0 && t.last >= t.o.StopAt, nil
	case "OutputGap":
		if e.NextSeq > t.last+1 && t.o.OnGap != nil { // not told before the connection dropped
			return false, t.o.OnGap(Gap{From: max(e.AfterSeq, t.last) + 1, To: e.NextSeq - 1})
		}
		return false, nil
	case "CommandFinished":
		f := e.Finished
		f.Reason, f.Signal = deref(e.Command.Reason), deref(e.Command.Signal)
		t.finished = &f
		return true, nil
	default:
		return false, fmt.Errorf("unexpected commandOutput event %q", e.Typename)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Exit statuses for commands that did not exit by themselves, as shells
// and coreutils timeout report them.
const (
	exitFailure   = 1
	exitTimedOut  = 124 // coreutils timeout
	exitSignal    = 128 // + the signal number
	exitCancelled = 130 // 128 + SIGINT: what Ctrl-C gives locally
)

// ExitStatus maps how the command ended to the exit status a shell would
// report for it, as rdev exec and rdev logs exit: 0 for SUCCEEDED; its own
// status for FAILED with an exit status; 128 + the signal number for
// FAILED by a signal (137 for SIGKILL); 124 for TIMED_OUT (as coreutils
// timeout); 130 for CANCELLED (as Ctrl-C); 1 for anything else
// (INTERRUPTED, a program that could not start).
func (f *Finished) ExitStatus() int {
	switch f.Status {
	case StatusSucceeded:
		return 0
	case StatusTimedOut:
		return exitTimedOut
	case StatusCancelled:
		return exitCancelled
	case StatusFailed:
		if f.ExitCode != nil && *f.ExitCode > 0 && *f.ExitCode < 256 {
			return *f.ExitCode
		}
		if n, ok := signalNumber(f.Signal); ok {
			return exitSignal + n
		}
		return exitFailure
	default: // INTERRUPTED (QUEUED and RUNNING never end a stream)
		return exitFailure
	}
}

// linuxSignals numbers the signals by name as Linux does (commands run in
// Linux pods, whatever the client runs on).
var linuxSignals = map[string]int{
	"SIGHUP": 1, "SIGINT": 2, "SIGQUIT": 3, "SIGILL": 4, "SIGTRAP": 5, "SIGABRT": 6,
	"SIGBUS": 7, "SIGFPE": 8, "SIGKILL": 9, "SIGUSR1": 10, "SIGSEGV": 11, "SIGUSR2": 12,
	"SIGPIPE": 13, "SIGALRM": 14, "SIGTERM": 15, "SIGSTKFLT": 16, "SIGCHLD": 17,
	"SIGCONT": 18, "SIGSTOP": 19, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22,
	"SIGURG": 23, "SIGXCPU": 24, "SIGXFSZ": 25, "SIGVTALRM": 26, "SIGPROF": 27,
	"SIGWINCH": 28, "SIGIO": 29, "SIGPWR": 30, "SIGSYS": 31,
}

// signalNumber parses the server's signal names: "SIGKILL", "SIGRTMIN+3"
// or "SIG40".
func signalNumber(name string) (int, bool) {
	if name == "" {
		return 0, false
	}
	if n, ok := linuxSignals[name]; ok {
		return n, true
	}
	const rtmin = 34
	if s, ok := strings.CutPrefix(name, "SIGRTMIN+"); ok {
		n, err := strconv.Atoi(s)
		return rtmin + n, err == nil && n >= 0 && rtmin+n < 128
	}
	n, err := strconv.Atoi(strings.TrimPrefix(name, "SIG"))
	return n, err == nil && n > 0 && n < 128
}

// errNoOnChunk is Tail's answer to options without OnChunk.
var errNoOnChunk = errors.New("client: TailOptions.OnChunk is required")
