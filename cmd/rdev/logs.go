package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/rdev-hq/rdev/client"
)

// runLogs prints a command's stored output, and with --follow its live
// output to the end.
//
// Without --follow it prints up to the lastSeq that `command(id)` reports
// when it starts, or to the end if the command has finished; it exits with
// the command's status if it has finished (as exec does), 0 if it is still
// queued or running. With --follow it streams until the command ends and
// exits with its status.
func runLogs(ctx context.Context, args []string, c cli) (int, error) {
	var conn connFlags
	var follow bool
	var afterSeq int
	f := newEnvFlags("rdev logs [flags] COMMAND_ID", c.getenv, c.stderr)
	conn.register(f)
	f.BoolVar(&follow, "follow", false, "stream live output until the command ends")
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
	cmd, err := cl.Command(ctx, id)
	if err != nil {
		return 0, err
	}
	out := newPrinter(id, afterSeq, c.stdout, c.stderr)
	stopAt := 0
	if !follow && !cmd.Status.Final() {
		if cmd.LastSeq <= afterSeq {
			return 0, nil // nothing stored past afterSeq yet
		}
		stopAt = cmd.LastSeq
	}
	fin, err := out.run(ctx, cl, stopAt)
	if err != nil || fin == nil {
		return 0, err
	}
	return fin.report(c.stderr, id), nil
}

// printer writes a command's output as client.Tail delivers it, STDOUT
// chunks to stdout and STDERR chunks to stderr, and notes gaps on stderr.
type printer struct {
	id             string
	afterSeq       int
	last           int // the highest seq written
	stdout, stderr io.Writer
}

func newPrinter(id string, afterSeq int, stdout, stderr io.Writer) *printer {
	return &printer{id: id, afterSeq: afterSeq, last: afterSeq, stdout: stdout, stderr: stderr}
}

// run streams output until the command ends, which it returns, or until
// stopAt (> 0) is written (nil).
func (p *printer) run(ctx context.Context, cl *client.Client, stopAt int) (*finished, error) {
	fin, err := cl.Tail(ctx, p.id, client.TailOptions{AfterSeq: p.afterSeq, StopAt: stopAt,
		OnChunk: func(ch client.Chunk) error {
			w := p.stdout
			if ch.Stream == client.Stderr {
				w = p.stderr
			}
			if _, err := io.WriteString(w, ch.Data); err != nil {
				return err
			}
			p.last = ch.Seq
			return nil
		},
		OnGap: func(g client.Gap) error {
			_, _ = fmt.Fprintf(p.stderr, "rdev: [chunks %d to %d of the output of command %s were not stored]\n", g.From, g.To, p.id)
			return nil
		},
	})
	if client.Retryable(err) {
		return nil, fmt.Errorf("%w\nrdev: to resume: rdev logs --follow --after-seq %d %s", err, p.last, p.id)
	}
	if err != nil || fin == nil {
		return nil, err
	}
	return &finished{*fin}, nil
}

// finished is how a command ended, as the CLI reports it.
type finished struct{ client.Finished }

// report prints to w why the command ended unless it exited by itself, and
// returns its exit code (client.Finished.ExitStatus).
func (f *finished) report(w io.Writer, id string) int {
	code := f.ExitStatus()
	if f.Truncated {
		_, _ = fmt.Fprintf(w, "rdev: the output of command %s passed the server's cap; its middle was dropped\n", id)
	}
	if f.OutputLostBytes > 0 {
		_, _ = fmt.Fprintf(w, "rdev: %d bytes of the output of command %s were lost: storage refused them\n", f.OutputLostBytes, id)
	}
	if f.Status == client.StatusSucceeded || (f.Status == client.StatusFailed && f.ExitCode != nil) {
		return code
	}
	reason := strings.ToLower(strings.ReplaceAll(string(f.Status), "_", " "))
	if f.Reason != "" {
		reason = f.Reason
	}
	if f.Status == client.StatusFailed && f.Signal == "" {
		reason = "failed: " + reason
	}
	_, _ = fmt.Fprintf(w, "rdev: command %s %s\n", id, reason)
	return code
}
