package main

import (
	"context"
	"fmt"
	"text/tabwriter"
)

func runMigrate(ctx context.Context, args []string, c cli) error {
	var cfg storeConfig
	f := newEnvFlags("rdev migrate up|down|status", c.getenv, c.stderr)
	cfg.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() != 1 {
		return usageError("migrate needs one of: up, down, status")
	}
	s, ms, err := cfg.open(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()

	switch f.Arg(0) {
	case "up":
		if err := s.Migrate(ctx, ms); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s: schema is current\n", cfg.where())
		return err
	case "down":
		if err := s.MigrateDown(ctx, ms); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s: rolled back the last migration group\n", cfg.where())
		return err
	case "status":
		states, err := s.MigrationStatus(ctx, ms)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		_, _ = fmt.Fprintln(tw, "MIGRATION\tSTATE")
		for _, st := range states {
			state := "pending"
			if st.Applied {
				state = "applied"
			}
			_, _ = fmt.Fprintf(tw, "%s\t%s\n", st.Name, state)
		}
		return tw.Flush()
	}
	return usageError(fmt.Sprintf("migrate: unknown action %q (want up, down or status)", f.Arg(0)))
}
