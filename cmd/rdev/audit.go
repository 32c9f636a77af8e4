package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/rdev-hq/rdev/domain"
)

// auditConfig is how the audit log is kept; serve and keys share it.
type auditConfig struct {
	Redact string
}

func (c *auditConfig) register(f *envFlags) {
	f.String(&c.Redact, "audit-redact", "RDEV_AUDIT_REDACT", domain.DefaultAuditRedact,
		"regexp of env variable and flag names whose values the audit log never records")
}

// redact compiles the redaction pattern, or returns an error naming the
// variable.
func (c *auditConfig) redact() (*regexp.Regexp, error) {
	re, err := regexp.Compile(c.Redact)
	if err != nil {
		return nil, fmt.Errorf("RDEV_AUDIT_REDACT: %w", err)
	}
	return re, nil
}

// errAuditBroken makes `rdev audit verify` exit non-zero after printing
// where the chain breaks.
var errAuditBroken = errors.New("the audit log's hash chain is broken")

// runAudit works on the audit log directly in the configured database.
func runAudit(ctx context.Context, args []string, c cli) error {
	var cfg storeConfig
	f := newEnvFlags("rdev audit verify", c.getenv, c.stderr)
	cfg.register(f)
	if err := f.Parse(args); err != nil {
		return err
	}
	if f.NArg() != 1 || f.Arg(0) != "verify" {
		return usageError("audit needs: verify")
	}
	s, _, err := cfg.openMigrated(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	r, err := domain.VerifyAudit(ctx, s)
	if err != nil {
		return err
	}
	if r.Break != nil {
		_, _ = fmt.Fprintf(c.stdout, "%s: audit log BROKEN at entry %d: %s (%d entries before it are intact)\n",
			cfg.where(), r.Break.Seq, r.Break.Reason, r.Entries)
		return errAuditBroken
	}
	_, err = fmt.Fprintf(c.stdout, "%s: audit log intact: %d entries, head %s\n", cfg.where(), r.Entries, headHash(r.Head))
	return err
}

func headHash(h domain.AuditHead) string {
	if h.Hash == "" {
		return "(empty)"
	}
	return h.Hash
}
