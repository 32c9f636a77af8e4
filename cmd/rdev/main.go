// Command rdev is the rdev server and its operator CLI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/rdev-hq/rdev/infra/local"
)

// Set at build time with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

const usage = `rdev runs commands in long-lived development pods and streams their output.

Usage:
  rdev serve [flags]                     run the API server (embedded defaults: SQLite, ./workspace)
  rdev migrate up|down|status [flags]    manage the database schema
  rdev keys create --name N --scopes S   create an API key and print its token once (--init: make the database)
  rdev keys list                         list API keys
  rdev keys revoke ID                    revoke an API key
  rdev keys rotate ID [--grace D]        give an API key a new secret and print its token once
  rdev keys update ID [--name N] [--scopes S] [--allowed-cidrs C] [--rate-limit N] [--expires D] [--projects P] [--project-selector L]
                                         rename an API key or narrow what it may do
  rdev audit verify [--checkpoints F]    check the audit log's chain, MACs and checkpoints (exit 1 on a break)
  rdev secrets rotate-key [--new-key-file F]
                                         seal every project secret again under the new key (F's, else the first of the keyring)
  rdev exec PROJECT -- ARGV…             run a command in a project and stream its output
  rdev exec --prompt TEXT PROJECT        run the Claude Code CLI with a prompt and stream its output
  rdev agent PROJECT "PROMPT"            run an AI coding agent (Claude Code) and render its events (--resume S, --json)
  rdev logs [--follow] COMMAND_ID        print a command's output (exit with its status once it ended)
  rdev cancel COMMAND_ID                 cancel a queued or running command
  rdev version                           print the version

Run "rdev COMMAND --help" for the flags of a command. Every flag can also be
set by the environment variable named in its help.
`

// cli is what a subcommand may touch of the outside world.
type cli struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func main() {
	// A sandboxed command's launcher is this binary; it never returns.
	local.ServeLauncher()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], cli{getenv: os.Getenv, stdout: os.Stdout, stderr: os.Stderr})
	stop()
	os.Exit(code)
}

// run executes one subcommand and returns the process exit code.
func run(ctx context.Context, args []string, c cli) int {
	if len(args) == 0 {
		_, _ = fmt.Fprint(c.stderr, usage)
		return 2
	}
	var (
		code int // the exit code when err is nil
		err  error
	)
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = runServe(ctx, rest, c)
	case "migrate":
		err = runMigrate(ctx, rest, c)
	case "keys":
		err = runKeys(ctx, rest, c)
	case "audit":
		err = runAudit(ctx, rest, c)
	case "secrets":
		err = runSecrets(ctx, rest, c)
	case "exec":
		code, err = runExec(ctx, rest, c)
	case "logs":
		code, err = runLogs(ctx, rest, c)
	case "agent":
		code, err = runAgent(ctx, rest, c)
	case "cancel":
		err = runCancel(ctx, rest, c)
	case "version", "--version":
		_, err = fmt.Fprintf(c.stdout, "rdev %s %s\n", version, commit)
	case "help", "-h", "--help":
		_, err = fmt.Fprint(c.stdout, usage)
	default:
		_, _ = fmt.Fprintf(c.stderr, "rdev: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return code
	case errors.Is(err, flag.ErrHelp):
		return 0
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return exitCancelled // interrupted: what the shell reports for Ctrl-C
	case errors.As(err, new(usageError)):
		_, _ = fmt.Fprintf(c.stderr, "rdev: %v\n", err)
		return 2
	}
	_, _ = fmt.Fprintf(c.stderr, "rdev: %v\n", err)
	return exitFailure
}

// rdev's own exit statuses; a command's are client.Finished.ExitStatus.
const (
	exitFailure   = 1
	exitCancelled = 130 // 128 + SIGINT: what Ctrl-C gives locally
)

// usageError is a mistake in how a command was called (exit status 2).
type usageError string

func (e usageError) Error() string { return string(e) }
