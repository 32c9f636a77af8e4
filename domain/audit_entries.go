package domain

import (
	"strconv"
	"strings"
	"time"
)

// The entries of each audited action. Details hold facts about the action,
// never a secret: no tokens or secret hashes, and env and argv only as
// redacted by AuditService.

// executeEntry describes a queued command.
func (s *AuditService) executeEntry(e *AuditEntry, c *Command) {
	if e == nil {
		return
	}
	e.Target = c.ID
	e.Details = map[string]string{
		"project":  c.ProjectID,
		"type":     string(c.Type),
		"argv":     s.redactArgv(c.Argv),
		"env":      s.redactEnv(c.Env),
		"priority": strconv.Itoa(int(c.Priority)),
	}
	if c.Workdir != "" {
		e.Details["workdir"] = c.Workdir
	}
	if c.Timeout > 0 {
		e.Details["timeoutSeconds"] = strconv.FormatInt(int64(c.Timeout/time.Second), 10)
	}
	if c.ClientToken != "" {
		e.Details["clientToken"] = c.ClientToken
	}
}

// FinishEntry is the command.finish entry of command c ending with f: its
// actor is the key that submitted the command, its details the status, exit
// code or signal, duration, output bytes and truncation.
func FinishEntry(c *Command, f Finish) *AuditEntry {
	e := &AuditEntry{
		At: f.FinishedAt.UTC().Truncate(time.Microsecond), Actor: c.KeyID,
		Action: AuditCommandFinish, Target: c.ID, Outcome: AuditSuccess,
		Details: map[string]string{
			AuditProjectDetail: c.ProjectID,
			"status":           string(f.Status),
			"outputBytes":      strconv.FormatInt(f.OutputBytes, 10),
			"truncated":        strconv.FormatBool(f.Truncated),
		},
	}
	if e.Actor == "" {
		e.Actor = AuditActorCLI
	}
	if f.ExitCode != nil {
		e.Details["exitCode"] = strconv.Itoa(*f.ExitCode)
	}
	if f.Signal != "" {
		e.Details["signal"] = f.Signal
	}
	if f.Reason != "" {
		e.Details["reason"] = f.Reason
	}
	if c.StartedAt != nil {
		e.Details["durationMs"] = strconv.FormatInt(f.FinishedAt.Sub(*c.StartedAt).Milliseconds(), 10)
	}
	return e
}

// ExpiredEntry is the command.finish entry of a command that ExpireLeases
// ended INTERRUPTED; c is the command as stored after the change.
func ExpiredEntry(c *Command) *AuditEntry {
	f := Finish{Status: c.Status, Reason: c.Reason, OutputBytes: c.OutputBytes, Truncated: c.Truncated, LastSeq: c.LastSeq}
	if c.FinishedAt != nil {
		f.FinishedAt = *c.FinishedAt
	}
	return FinishEntry(c, f)
}

// keyDetails describes a created key: never its token or secret hash.
func keyDetails(k *APIKey) map[string]string {
	d := map[string]string{"name": k.Name, "scopes": strings.Join(k.Scopes.Strings(), ",")}
	if k.ExpiresAt != nil {
		d["expiresAt"] = AuditTime(*k.ExpiresAt)
	}
	if len(k.AllowedCIDRs) > 0 {
		cidrs := make([]string, len(k.AllowedCIDRs))
		for i, p := range k.AllowedCIDRs {
			cidrs[i] = p.String()
		}
		d["allowedCidrs"] = strings.Join(cidrs, ",")
	}
	if k.RateLimit > 0 {
		d["rateLimit"] = strconv.Itoa(k.RateLimit)
	}
	if len(k.Projects.Names) > 0 {
		d["projects"] = strings.Join(k.Projects.Names, ",")
	}
	if len(k.Projects.Selectors) > 0 {
		d["projectSelectors"] = strings.Join(k.Projects.SelectorStrings(), ";")
	}
	return d
}
