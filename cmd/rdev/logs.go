package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/rdev-hq/rdev/domain"
)

const commandQuery = `query($id: ID!) { command(id: $id) { status lastSeq } }`

// runLogs prints a command's stored output, and with --follow its live
// output to the end.
//
// Without --follow it prints up to the lastSeq that `command(id)` reports
// when it starts, or to the end if the command has finished, and exits 0.
// With --follow it streams until CommandFinished and exits with the
// command's status, as exec does.
func runLogs(ctx context.Context, args []string, c cli) (int, error) {
	var conn connFlags
	var follow bool
	var afterSeq int
	f := newEnvFlags("rdev logs [flags] COMMAND_ID", c.getenv, c.stderr)
	conn.register(f)
	f.BoolVar(&follow, "follow", false, "stream live output until the command ends, and exit with its status")
	f.IntVar(&afterSeq, "after-seq", 0, "print only output after this seq (resume where an earlier run stopped)")
	if err := f.Parse(args); err != nil {
		return 0, err
	}
	if f.NArg() != 1 {
		return 0, usageError("logs needs exactly one command ID")
	}
	if afterSeq < 0 {
		return 0, usageError("--after-seq must not be negative")
	}
	cl, err := conn.client()
	if err != nil {
		return 0, err
	}
	id := f.Arg(0)

	var q struct {
		Command struct {
			Status  domain.CommandStatus `json:"status"`
			LastSeq int                  `json:"lastSeq"`
		} `json:"command"`
	}
	if err := cl.do(ctx, commandQuery, map[string]any{"id": id}, &q); err != nil {
		return 0, err
	}
	out := newFollower(cl, id, afterSeq, c.stdout, c.stderr)
	if !follow && !q.Command.Status.Final() {
		if q.Command.LastSeq <= afterSeq {
			return 0, nil // nothing stored past afterSeq yet
		}
		out.stopAt = q.Command.LastSeq
	}
	fin, err := out.run(ctx)
	if err != nil {
		return 0, err
	}
	if !follow || fin == nil {
		return 0, nil
	}
	return fin.report(c.stderr, id), nil
}

// outputQuery follows one command's output from a seq on.
const outputQuery = `subscription($id: ID!, $after: Int) {
  commandOutput(commandId: $id, afterSeq: $after) {
    __typename
    ... on OutputChunk { seq stream data }
    ... on OutputGap { afterSeq nextSeq }
    ... on CommandFinished { status exitCode durationMs truncated outputLostBytes lastSeq command { reason signal } }
  }
}`

// follower writes a command's output, STDOUT chunks to stdout and STDERR
// chunks to stderr, each chunk exactly once and in seq order however often
// the connection drops: it resubscribes after the last seq it wrote and
// skips any chunk at or below it.
type follower struct {
	c              *client
	id             string
	last           int // the highest seq written
	stopAt         int // > 0: stop once this seq is written
	stdout, stderr io.Writer
	finished       *finished
}

func newFollower(c *client, id string, afterSeq int, stdout, stderr io.Writer) *follower {
	return &follower{c: c, id: id, last: afterSeq, stdout: stdout, stderr: stderr}
}

// run streams output until CommandFinished, which it returns, or until
// stopAt is written (nil).
func (f *follower) run(ctx context.Context) (*finished, error) {
	vars := func() map[string]any { return map[string]any{"id": f.id, "after": f.last} }
	err := f.c.subscribe(ctx, outputQuery, vars, f.event)
	if isTransient(err) {
		return nil, fmt.Errorf("%w\nrdev: to resume: rdev logs --follow --after-seq %d %s", err, f.last, f.id)
	}
	if err != nil {
		return nil, err
	}
	return f.finished, nil
}

// outputEvent is an OutputChunk, an OutputGap, or the CommandFinished that
// ends the stream.
type outputEvent struct {
	Typename string `json:"__typename"`
	Seq      int    `json:"seq"`
	Stream   string `json:"stream"`
	Data     string `json:"data"`
	AfterSeq int    `json:"afterSeq"`
	NextSeq  int    `json:"nextSeq"`
	finished
}

func (f *follower) event(data json.RawMessage) (done bool, err error) {
	var d struct {
		CommandOutput *outputEvent `json:"commandOutput"`
	}
	if err := json.Unmarshal(data, &d); err != nil || d.CommandOutput == nil {
		return false, fmt.Errorf("bad commandOutput event from the server: %s", data)
	}
	switch e := d.CommandOutput; e.Typename {
	case "OutputChunk":
		if e.Seq <= f.last {
			return false, nil // written before the connection dropped
		}
		w := f.stdout
		if e.Stream == "STDERR" {
			w = f.stderr
		}
		if _, err := io.WriteString(w, e.Data); err != nil {
			return false, err
		}
		f.last = e.Seq
		return f.stopAt > 0 && f.last >= f.stopAt, nil
	case "OutputGap":
		if e.NextSeq > f.last+1 { // not told before the connection dropped
			_, _ = fmt.Fprintf(f.stderr, "rdev: [chunks %d to %d of the output of command %s were not stored]\n", max(e.AfterSeq, f.last)+1, e.NextSeq-1, f.id)
		}
		return false, nil
	case "CommandFinished":
		f.finished = &e.finished
		return true, nil
	default:
		return false, fmt.Errorf("unexpected commandOutput event %q", e.Typename)
	}
}

// finished is how a command ended (CommandFinished).
type finished struct {
	Status     domain.CommandStatus `json:"status"`
	ExitCode   *int                 `json:"exitCode"`
	DurationMs int                  `json:"durationMs"`
	Truncated  bool                 `json:"truncated"`
	LostBytes  int64                `json:"outputLostBytes"`
	LastSeq    int                  `json:"lastSeq"`
	Command    struct {
		Reason *string `json:"reason"`
		Signal *string `json:"signal"`
	} `json:"command"`
}

// Exit statuses for commands that did not exit by themselves, as shells
// and coreutils timeout report them.
const (
	exitFailure   = 1
	exitTimedOut  = 124 // coreutils timeout
	exitSignal    = 128 // + the signal number
	exitCancelled = 130 // 128 + SIGINT: what Ctrl-C gives locally
)

// exitCode maps how the command ended to rdev's exit status: 0 for
// SUCCEEDED; its own status for FAILED with an exit status; 128 + the
// signal number for FAILED by a signal (137 for SIGKILL); 124 for
// TIMED_OUT; 130 for CANCELLED; 1 for anything else (INTERRUPTED, a
// program that could not start).
func (f *finished) exitCode() int {
	switch f.Status {
	case domain.CommandSucceeded:
		return 0
	case domain.CommandTimedOut:
		return exitTimedOut
	case domain.CommandCancelled:
		return exitCancelled
	case domain.CommandFailed:
		if f.ExitCode != nil && *f.ExitCode > 0 && *f.ExitCode < 256 {
			return *f.ExitCode
		}
		if f.Command.Signal != nil {
			if n, ok := signalNumber(*f.Command.Signal); ok {
				return exitSignal + n
			}
		}
		return exitFailure
	default: // INTERRUPTED (QUEUED and RUNNING never end a stream)
		return exitFailure
	}
}

// report prints to w why the command ended unless it exited by itself, and
// returns its exit code.
func (f *finished) report(w io.Writer, id string) int {
	code := f.exitCode()
	if f.Truncated {
		_, _ = fmt.Fprintf(w, "rdev: the output of command %s passed the server's cap; its middle was dropped\n", id)
	}
	if f.LostBytes > 0 {
		_, _ = fmt.Fprintf(w, "rdev: %d bytes of the output of command %s were lost: storage refused them\n", f.LostBytes, id)
	}
	if f.Status == domain.CommandSucceeded || (f.Status == domain.CommandFailed && f.ExitCode != nil) {
		return code
	}
	reason := strings.ToLower(strings.ReplaceAll(string(f.Status), "_", " "))
	if f.Command.Reason != nil && *f.Command.Reason != "" {
		reason = *f.Command.Reason
	}
	if f.Status == domain.CommandFailed && f.Command.Signal == nil {
		reason = "failed: " + reason
	}
	_, _ = fmt.Fprintf(w, "rdev: command %s %s\n", id, reason)
	return code
}

// linuxSignals numbers the signals by name as Linux does (commands run in
// Linux pods, whatever the CLI runs on).
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
