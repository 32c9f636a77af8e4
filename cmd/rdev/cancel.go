package main

import (
	"context"
	"fmt"

	"github.com/rdev-hq/rdev/client"
)

// runCancel cancels a command: a queued one ends at once, a running one is
// stopped with its process group (SIGTERM, then SIGKILL after the server's
// RDEV_KILL_GRACE). A command that has already ended is an error
// (CONFLICT), so a script learns that nothing was cancelled.
func runCancel(ctx context.Context, args []string, c cli) error {
	var conn connFlags
	f := newEnvFlags("rdev cancel [flags] COMMAND_ID", c.getenv, c.stderr)
	conn.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return usageError("cancel needs exactly one command ID")
	}
	cl, err := conn.client()
	if err != nil {
		return err
	}
	cmd, err := cl.Cancel(ctx, f.Arg(0))
	if err != nil {
		return err
	}
	if cmd.Status == client.StatusRunning {
		_, err = fmt.Fprintf(c.stdout, "Cancelling command %s: it is being stopped (rdev logs --follow %s shows how it ends).\n", cmd.ID, cmd.ID)
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "Command %s is %s.\n", cmd.ID, cmd.Status)
	return err
}
