package domain

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultAuditRedact matches the flag and assignment names in argv whose
// values the audit log never records (env values it never records at all).
const DefaultAuditRedact = `(?i)(secret|token|password|passwd|key|credential|auth)`

// Redacted replaces a value the audit log does not keep.
const Redacted = "[REDACTED]"

// AuditService makes audit entries, records refused attempts, lists the log
// and verifies its hash chain.
type AuditService struct {
	repo   AuditRepository
	redact *regexp.Regexp
	now    func() time.Time
	// projects judges project scopes' selectors; nil admits by name only.
	projects ProjectRepository
}

// NewAuditService returns a service over repo. Values of env variables, and
// of argv flags whose names match redact, are never recorded; nil means
// DefaultAuditRedact.
func NewAuditService(repo AuditRepository, redact *regexp.Regexp) *AuditService {
	if redact == nil {
		redact = regexp.MustCompile(DefaultAuditRedact)
	}
	return &AuditService{repo: repo, redact: redact, now: time.Now}
}

// entry returns a successful entry of action on target by the caller in ctx.
// A nil service makes no entries (some tests run services without a log).
func (s *AuditService) entry(ctx context.Context, action, target string) *AuditEntry {
	if s == nil {
		return nil
	}
	e := &AuditEntry{At: s.now().UTC().Truncate(time.Microsecond), Action: action, Target: target, Outcome: AuditSuccess}
	if c := CallerFromContext(ctx); c != nil {
		e.Actor = c.Actor()
		if c.Addr.IsValid() {
			e.ClientIP = c.Addr.String()
		}
		e.UserAgent, e.RequestID = c.UserAgent, c.RequestID
	}
	return e
}

// refused records an attempt that did not take effect, on its own, with its
// outcome and error code, and returns err. Only authenticated callers'
// attempts are recorded: anyone can make unauthenticated ones, and they are
// refused before any work is done. A failure to record is joined to err.
func (s *AuditService) refused(ctx context.Context, e *AuditEntry, err error) error {
	if s == nil || e == nil {
		return err
	}
	if c := CallerFromContext(ctx); c == nil || (c.Key == nil && !c.Operator) {
		return err
	}
	e.Outcome, e.ErrorCode = AuditFailed, ErrorCode(err)
	if e.ErrorCode == EFORBIDDEN || e.ErrorCode == EUNAUTHENTICATED {
		e.Outcome = AuditDenied
	}
	if aerr := s.repo.AppendAudit(context.WithoutCancel(ctx), e); aerr != nil {
		return fmt.Errorf("%w (and recording it in the audit log failed: %w)", err, aerr)
	}
	return err
}

// Refused records an attempt at action on target that was refused before it
// reached a service (such as a missing scope at the GraphQL edge), like the
// services record their own refusals, and returns err. A nil service records
// nothing.
func (s *AuditService) Refused(ctx context.Context, action, target string, err error) error {
	return s.refused(ctx, s.entry(ctx, action, target), err)
}

// redactEnv returns env as JSON with every value redacted: the audit log is
// kept for good, and a command's environment values are kept only until it
// starts, whatever their names.
func (s *AuditService) redactEnv(env map[string]string) string {
	out := make(map[string]string, len(env))
	for k := range env {
		out[k] = Redacted
	}
	b, _ := json.Marshal(out) // a map of strings always encodes.
	return string(b)
}

// redactArgv returns argv as JSON with the values of matching flags and
// assignments redacted: "--token=x" and "TOKEN=x" keep their names, and the
// argument after a bare "--token" or "-password" is replaced.
func (s *AuditService) redactArgv(argv []string) string {
	out := make([]string, len(argv))
	hide := false
	for i, a := range argv {
		switch {
		case hide:
			a, hide = Redacted, false
		case i > 0 && strings.HasPrefix(a, "-"):
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			if s.redact.MatchString(name) {
				if hasValue {
					a = a[:strings.Index(a, "=")+1] + Redacted
				} else {
					hide = true
				}
			}
		case i > 0:
			if name, _, ok := strings.Cut(a, "="); ok && name != "" && s.redact.MatchString(name) {
				a = name + "=" + Redacted
			}
		}
		out[i] = a
	}
	b, _ := json.Marshal(out) // a slice of strings always encodes.
	return string(b)
}

// List returns a page of entries, newest first. A caller limited to projects
// sees only the entries about a project in its scope (those whose details
// name the project: command.execute, command.cancel, command.finish). It
// needs audit:read; EINVALID for an unknown action or a time range that
// ends before it starts.
func (s *AuditService) List(ctx context.Context, f AuditFilter, req PageRequest) (Page[*AuditEntry], error) {
	caller, err := Authorize(ctx, ScopeAuditRead)
	if err != nil {
		return Page[*AuditEntry]{}, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return Page[*AuditEntry]{}, Errorf(EINVALID, "filter: until must be after since")
	}
	if req.After != "" {
		if _, err := parseAuditCursor(req.After); err != nil {
			return Page[*AuditEntry]{}, err
		}
	}
	return scopedPage(req, func(after string, limit int) ([]*AuditEntry, error) {
		g := f
		if after != "" {
			g.BeforeSeq, _ = parseAuditCursor(after) // checked above, or made by AuditCursorKey
		}
		g.Limit = limit
		return s.repo.FindAuditEntries(ctx, g)
	}, AuditCursorKey, s.auditKeep(ctx, caller))
}

// AuditCursorKey is the cursor key of an entry, for EncodeCursor.
func AuditCursorKey(e *AuditEntry) string { return strconv.FormatInt(e.Seq, 10) }

func parseAuditCursor(key string) (int64, error) {
	seq, err := strconv.ParseInt(key, 10, 64)
	if err != nil || seq < 1 {
		return 0, Errorf(EINVALID, "after: malformed cursor")
	}
	return seq, nil
}
