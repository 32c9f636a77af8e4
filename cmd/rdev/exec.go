package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/rdev-hq/rdev/client"
	"github.com/rdev-hq/rdev/domain"
)

// How long exec goes on after Ctrl-C. A second Ctrl-C does not reach us
// (main's context is already cancelled), so these bound the wait instead.
const (
	// submitGrace lets a submit in flight finish, so that the command it
	// may have queued can be cancelled.
	submitGrace = 5 * time.Second
	// cancelGrace bounds following a command after asking to cancel it.
	cancelGrace = 30 * time.Second
)

// runExec runs a command in a project, streams its output to stdout and
// stderr, and returns the command's status as the exit code (see
// finished.exitCode). The first Ctrl-C cancels the command and keeps
// streaming until it ends.
func runExec(ctx context.Context, args []string, c cli) (int, error) {
	var o execOptions
	if err := o.parse(args, c); err != nil {
		return 0, err
	}
	cl, err := o.conn.client()
	if err != nil {
		return 0, err
	}
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	id, err := submit(ctx, cl, o.input())
	if errors.Is(err, errSubmitGrace) {
		_, _ = fmt.Fprintf(c.stderr, "rdev: interrupted before the server answered; the command may be queued with client token %s\n", o.token)
		return exitCancelled, nil
	}
	if err != nil {
		return 0, err
	}
	if o.detach {
		_, err := fmt.Fprintln(c.stdout, id)
		return 0, err
	}
	return follow(ctx, cl, id, c)
}

// execOptions are exec's flags and arguments.
type execOptions struct {
	conn           connFlags
	project        string
	argv           []string
	prompt         string
	priority       domain.Priority
	workdir, token string
	timeout        time.Duration
	shell, detach  bool
	env            []client.EnvVar
}

func (o *execOptions) parse(args []string, c cli) error {
	var priority string
	f := newEnvFlags("rdev exec [flags] PROJECT [--] ARGV…", c.getenv, c.stderr)
	o.conn.register(f)
	f.StringVar(&priority, "priority", "NORMAL", "queue priority: LOW, NORMAL, HIGH or URGENT")
	f.DurationVar(&o.timeout, "timeout", 0, "kill the command after this long, e.g. 30s or 2h; 0 uses the server's default")
	f.StringVar(&o.workdir, "workdir", "", "working directory, relative to the project root")
	envFlag(f, "command", &o.env)
	f.BoolVar(&o.shell, "shell", false, "run the arguments, joined by spaces, as a /bin/sh -c script")
	f.StringVar(&o.prompt, "prompt", "", "run the Claude Code CLI with this prompt (a CLAUDE command: the server's RDEV_CLAUDE_COMMAND, then -p -- PROMPT); no ARGV")
	f.StringVar(&o.token, "client-token", "", "idempotency token: submitting again with it runs nothing twice (default: random)")
	f.BoolVar(&o.detach, "detach", false, "print the command's ID and exit without following it")
	var err error
	if o.project, o.argv, err = parseExecArgs(f, args); err != nil {
		return err
	}
	switch {
	case o.prompt != "" && (len(o.argv) > 0 || o.shell):
		return usageError("--prompt runs a prompt, not a command: give PROJECT alone")
	case o.prompt == "" && len(o.argv) == 0:
		return usageError("exec needs a command after the project: rdev exec PROJECT -- ARGV…")
	}
	if o.priority, err = domain.ParsePriority(strings.ToUpper(priority)); err != nil {
		return usageError(domain.ErrorMessage(err))
	}
	if o.timeout < 0 {
		return usageError("--timeout must not be negative")
	}
	if o.token == "" {
		o.token = rand.Text()
	}
	return nil
}

// envFlag registers --env NAME=VALUE, repeatable, appending to env; what
// names the command or run it is for.
func envFlag(f *envFlags, what string, env *[]client.EnvVar) {
	f.Func("env", "an environment variable NAME=VALUE for the "+what+" (repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, "=")
		if !ok || name == "" {
			return fmt.Errorf("%q is not NAME=VALUE", s)
		}
		*env = append(*env, client.EnvVar{Name: name, Value: value})
		return nil
	})
}

// input returns what to execute.
func (o *execOptions) input() client.ExecuteInput {
	in := client.ExecuteInput{ProjectID: o.project, Prompt: o.prompt, Env: o.env, Workdir: o.workdir,
		Priority: client.Priority(o.priority.String()), Timeout: o.timeout, ClientToken: o.token}
	switch {
	case o.prompt != "":
	case o.shell:
		in.Shell = strings.Join(o.argv, " ")
	default:
		in.Argv = o.argv
	}
	return in
}

// submit queues the command and returns its ID. Ctrl-C (ctx) does not cut
// it short at once: once the request has gone out the command may exist,
// and only its ID lets follow cancel it; after submitGrace it gives up
// with errSubmitGrace. Retries after a network error carry the same client
// token, so the command is queued once.
func submit(ctx context.Context, cl *client.Client, in client.ExecuteInput) (string, error) {
	sctx, stop := outlive(ctx, submitGrace, errSubmitGrace)
	defer stop()
	cmd, err := cl.Execute(sctx, in)
	if cause := context.Cause(sctx); err != nil && errors.Is(cause, errSubmitGrace) {
		return "", cause
	}
	if err != nil {
		return "", err
	}
	return cmd.ID, nil
}

// parseExecArgs parses flags, then PROJECT, then the command (none with
// --prompt). Flags may also follow PROJECT if "--" or another flag comes
// right after it: `rdev exec demo --shell -- 'ls | wc -l'`.
func parseExecArgs(f *envFlags, args []string) (project string, argv []string, err error) {
	if err := f.Parse(args); err != nil {
		return "", nil, err
	}
	if f.NArg() == 0 {
		return "", nil, usageError("exec needs a project and a command: rdev exec PROJECT -- ARGV…, or rdev exec --prompt TEXT PROJECT")
	}
	project, rest := f.Arg(0), f.Args()[1:]
	if len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		if err := f.Parse(rest); err != nil {
			return "", nil, err
		}
		rest = f.Args()
	}
	return project, rest, nil
}

var (
	errSubmitGrace = errors.New("the server did not answer the submit after Ctrl-C")
	errCancelGrace = errors.New("the command did not end after cancelling")
)

// outlive returns a context that ends grace after ctx does, with cause:
// for work that should finish, within reason, after Ctrl-C.
func outlive(ctx context.Context, grace time.Duration, cause error) (context.Context, context.CancelFunc) {
	out, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-t.C:
			cancel(cause)
		case <-out.Done():
		}
	})
	return out, func() { stop(); cancel(nil) }
}

// follow streams the command's output to its end and returns its exit
// code. Ctrl-C (ctx) does not stop following: it cancels the command, so
// the user sees how it ended, and following goes on for cancelGrace more.
func follow(ctx context.Context, cl *client.Client, id string, c cli) (int, error) {
	stderr := &lockedWriter{w: c.stderr}
	out := newPrinter(id, 0, c.stdout, stderr)
	fctx, stop := outlive(ctx, cancelGrace, errCancelGrace)
	defer stop()
	defer cancelOnInterrupt(ctx, fctx, cl, "command", id, stderr)()

	fin, err := out.run(fctx, cl, 0)
	switch {
	case errors.Is(context.Cause(fctx), errCancelGrace):
		_, _ = fmt.Fprintf(stderr, "rdev: command %s did not end within %s of cancelling; follow it with: rdev logs --follow --after-seq %d %s\n",
			id, cancelGrace, out.last, id)
		return exitCancelled, nil
	case err != nil:
		return 0, err
	}
	return fin.report(stderr, id), nil
}

// cancelOnInterrupt cancels command id (what names it: "command", "agent
// run") when ctx ends, within fctx, and says so on stderr. The returned
// function stops watching.
func cancelOnInterrupt(ctx, fctx context.Context, cl *client.Client, what, id string, stderr io.Writer) func() bool {
	return context.AfterFunc(ctx, func() {
		_, _ = fmt.Fprintf(stderr, "rdev: cancelling %s %s\n", what, id)
		_, err := cl.Cancel(fctx, id)
		// CONFLICT: it has just ended; a done fctx: following has ended.
		if err != nil && client.ErrorCode(err) != "CONFLICT" && fctx.Err() == nil {
			_, _ = fmt.Fprintf(stderr, "rdev: cancelling %s %s: %v\n", what, id, err)
		}
	})
}

// lockedWriter serializes writes: exec's stderr gets the command's STDERR
// and rdev's own notes from the Ctrl-C handler.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
