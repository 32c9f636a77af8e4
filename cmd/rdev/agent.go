package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/rdev-hq/rdev/client"
	"github.com/rdev-hq/rdev/domain"
)

// runAgent runs an AI coding agent in a project and renders its events as
// they come: the model's text, one line per tool call and per tool result,
// and its cost at the end (or, with --json, the events as JSON lines). The
// exit status is 0 when the agent finished its answer and its command
// succeeded, otherwise the command's (see client.Finished.ExitStatus) or 1.
// The first Ctrl-C cancels the run and keeps following it to its end.
func runAgent(ctx context.Context, args []string, c cli) (int, error) {
	var o agentOptions
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
	sctx, stop := outlive(ctx, submitGrace, errSubmitGrace)
	run, err := cl.RunAgent(sctx, o.in)
	stop()
	switch {
	case err != nil && errors.Is(context.Cause(sctx), errSubmitGrace):
		_, _ = fmt.Fprintf(c.stderr, "rdev: interrupted before the server answered; the run may be queued with client token %s\n", o.in.ClientToken)
		return exitCancelled, nil
	case err != nil:
		return 0, err
	}
	var r agentRenderer
	if o.json {
		r = &jsonRenderer{w: c.stdout}
	} else {
		r = &textRenderer{out: c.stdout, note: c.stderr}
	}
	return followAgent(ctx, cl, run.ID, r, c.stderr)
}

// agentOptions are agent's flags and arguments.
type agentOptions struct {
	conn connFlags
	in   client.AgentInput
	json bool
}

func (o *agentOptions) parse(args []string, c cli) error {
	var priority, allowed, disallowed string
	f := newEnvFlags(`rdev agent [flags] PROJECT "PROMPT"`, c.getenv, c.stderr)
	o.conn.register(f)
	f.StringVar(&o.in.SessionID, "resume", "", "continue this session (printed at the end of a run) in the same project")
	f.StringVar(&o.in.Model, "model", "", "the model; the agent's default when empty")
	f.IntVar(&o.in.MaxTurns, "max-turns", 0, "the most model turns; 0 for the agent's default")
	f.Float64Var(&o.in.MaxCostUSD, "max-cost", 0, "the most the run may spend on model calls, in US dollars; past it the run ends OVER_BUDGET; 0 for no limit")
	f.StringVar(&allowed, "allowed-tools", "", "comma-separated tools the agent may use without asking, e.g. Bash,Read")
	f.StringVar(&disallowed, "disallowed-tools", "", "comma-separated tools the agent may not use")
	f.StringVar(&o.in.PermissionMode, "permission-mode", "", "the agent's permission mode, e.g. acceptEdits")
	f.StringVar(&o.in.AppendSystemPrompt, "append-system-prompt", "", "text added to the agent's system prompt")
	f.StringVar(&priority, "priority", "NORMAL", "queue priority: LOW, NORMAL, HIGH or URGENT")
	f.DurationVar(&o.in.Timeout, "timeout", 0, "kill the run after this long, e.g. 10m; 0 uses the server's default")
	envFlag(f, "run", &o.in.Env)
	f.StringVar(&o.in.ClientToken, "client-token", "", "idempotency token: submitting again with it runs nothing twice (default: random)")
	f.BoolVar(&o.json, "json", false, "print the run's typed events as JSON lines instead of rendering them")
	// Flags may come before, between and after PROJECT and PROMPT; a
	// prompt that starts with "-" follows "--".
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			return err
		}
		if args = f.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != 2 {
		return usageError(`agent needs a project and a prompt: rdev agent PROJECT "PROMPT"`)
	}
	o.in.ProjectID, o.in.Prompt = pos[0], pos[1]
	p, err := domain.ParsePriority(strings.ToUpper(priority))
	if err != nil {
		return usageError(domain.ErrorMessage(err))
	}
	o.in.Priority = client.Priority(p.String())
	if o.in.Timeout < 0 || o.in.MaxTurns < 0 || o.in.MaxCostUSD < 0 {
		return usageError("--timeout, --max-turns and --max-cost must not be negative")
	}
	o.in.AllowedTools, o.in.DisallowedTools = toolList(allowed), toolList(disallowed)
	if o.in.ClientToken == "" {
		o.in.ClientToken = rand.Text()
	}
	return nil
}

// toolList splits a comma-separated list; nil for "".
func toolList(s string) []string {
	var out []string
	for t := range strings.SplitSeq(s, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// agentRenderer shows a run's events.
type agentRenderer interface {
	event(e *client.AgentEvent) error
}

// followAgent renders run id's events to its end and returns the exit
// status. Ctrl-C (ctx) cancels the run and following goes on for
// cancelGrace more, so the user sees how it ended.
func followAgent(ctx context.Context, cl *client.Client, id string, r agentRenderer, stderr io.Writer) (int, error) {
	fctx, stop := outlive(ctx, cancelGrace, errCancelGrace)
	defer stop()
	defer cancelOnInterrupt(ctx, fctx, cl, "agent run", id, stderr)()
	var agentStatus string
	end, err := cl.FollowAgent(fctx, id, 0, func(e *client.AgentEvent) error {
		if e.Type == client.AgentFinished {
			agentStatus = e.Status
		}
		return r.event(e)
	})
	switch {
	case errors.Is(context.Cause(fctx), errCancelGrace):
		_, _ = fmt.Fprintf(stderr, "rdev: agent run %s did not end within %s of cancelling\n", id, cancelGrace)
		return exitCancelled, nil
	case err != nil:
		return 0, err
	}
	return agentExitStatus(end.Ended(), agentStatus), nil
}

// agentExitStatus is the command's exit status, or 1 if the command
// succeeded but the agent did not say it finished its answer.
func agentExitStatus(f *client.Finished, agentStatus string) int {
	if code := f.ExitStatus(); code != 0 {
		return code
	}
	if agentStatus != string(domain.AgentSucceeded) {
		return exitFailure
	}
	return 0
}

// jsonRenderer prints each event as the server sent it, one a line.
type jsonRenderer struct{ w io.Writer }

func (j *jsonRenderer) event(e *client.AgentEvent) error {
	var b bytes.Buffer
	if err := json.Compact(&b, e.Raw); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := j.w.Write(b.Bytes())
	return err
}

// textRenderer prints a run for people: the model's text as it is, one
// compact line per tool call and result, and a summary at the end; what
// it does not understand goes to note.
type textRenderer struct {
	out, note io.Writer
}

// compactWidth bounds the one-line renderings of tool calls and results.
const compactWidth = 100

func (t *textRenderer) event(e *client.AgentEvent) error {
	var err error
	switch e.Type {
	case client.AgentStarted:
		_, err = fmt.Fprintf(t.out, "● session %s · %s · %s\n", e.SessionID, e.Model, e.Cwd)
	case client.AgentMessage:
		if e.Role == string(domain.AgentRoleAssistant) {
			_, err = fmt.Fprintln(t.out, strings.TrimRight(e.Text, "\n"))
		}
	case client.AgentToolUse:
		_, err = fmt.Fprintf(t.out, "→ %s %s\n", e.Name, toolSummary(e.Input))
	case client.AgentToolResult:
		mark := "←"
		if e.IsError {
			mark = "✗"
		}
		_, err = fmt.Fprintf(t.out, "  %s %s\n", mark, oneLine(e.Content))
	case client.AgentFinished:
		_, err = fmt.Fprintf(t.out, "%s %s · $%.4f · %d in / %d out tokens (%d cached) · %d turns · %s · session %s\n",
			finishMark(e.Status), e.Status, e.CostUSD, e.InputTokens, e.OutputTokens, e.CacheReadTokens, e.NumTurns,
			(time.Duration(e.DurationMs) * time.Millisecond).String(), e.SessionID)
		if e.Status != string(domain.AgentSucceeded) && e.Result != "" {
			_, err = fmt.Fprintf(t.out, "  %s\n", oneLine(e.Result))
		}
	case client.AgentRaw:
		_, err = fmt.Fprintf(t.note, "rdev: agent printed: %s\n", clipRunes(e.Line, compactWidth))
	case client.AgentRunEnded:
		if f := e.Ended(); f.Status != client.StatusSucceeded {
			_, err = fmt.Fprintf(t.note, "rdev: the agent's command ended %s%s\n", f.Status, reasonSuffix(f.Reason))
		}
	}
	return err
}

func finishMark(status string) string {
	if status == string(domain.AgentSucceeded) {
		return "✓"
	}
	return "✗"
}

func reasonSuffix(reason string) string {
	if reason == "" {
		return ""
	}
	return ": " + reason
}

// toolSummary renders a tool's JSON input on one line: the field that says
// most (a command, a path, a pattern, a URL) if there is one, else the
// compact JSON.
func toolSummary(input string) string {
	var fields map[string]any
	if json.Unmarshal([]byte(input), &fields) == nil {
		for _, k := range []string{"command", "file_path", "path", "pattern", "url", "query", "description"} {
			if s, ok := fields[k].(string); ok && s != "" {
				return oneLine(s)
			}
		}
	}
	var b bytes.Buffer
	if json.Compact(&b, []byte(input)) == nil {
		input = b.String()
	}
	return oneLine(input)
}

// oneLine returns s's first line, clipped to compactWidth, saying how
// many lines it left out.
func oneLine(s string) string {
	s = strings.TrimRight(s, "\n")
	first, rest, more := strings.Cut(s, "\n")
	first = clipRunes(first, compactWidth)
	if more {
		first += fmt.Sprintf(" (+%d lines)", strings.Count(rest, "\n")+1)
	}
	return first
}

// clipRunes cuts s to n characters, with "…" when cut.
func clipRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
