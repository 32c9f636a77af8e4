package resolvers

import (
	"slices"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph/model"
)

func executeCommand(in model.ExecuteCommandInput) domain.ExecuteCommand {
	out := domain.ExecuteCommand{
		ProjectID: in.ProjectID, Argv: in.Argv, Shell: deref(in.Shell), Prompt: deref(in.Prompt),
		Workdir: deref(in.Workdir), TimeoutSeconds: in.TimeoutSeconds, ClientToken: deref(in.ClientToken),
		Type: deref(in.Type), Priority: domain.PriorityNormal,
	}
	if in.Priority != nil {
		out.Priority = *in.Priority
	}
	for _, v := range in.Env {
		out.Env = append(out.Env, domain.EnvVar{Name: v.Name, Value: v.Value})
	}
	return out
}

func queue(q domain.QueueInfo) *model.Queue {
	out := &model.Queue{
		Running: q.Running, Concurrency: q.Concurrency,
		PerProject: q.PerProject, MaxQueuedPerKey: q.MaxQueuedPerKey,
	}
	for _, p := range slices.Backward(domain.Priorities) {
		out.Queued = append(out.Queued, &model.QueueDepth{Priority: p, Count: q.Queued[p]})
		out.QueuedTotal += q.Queued[p]
	}
	return out
}

func outputEvent(e domain.OutputEvent) model.CommandOutputEvent {
	if c := e.Finished; c != nil {
		return &model.CommandFinished{
			Command: c, Status: c.Status, ExitCode: c.ExitCode, Truncated: c.Truncated, OutputLostBytes: int(c.LostBytes),
			DurationMs: int(c.Duration().Milliseconds()), LastSeq: int(c.LastSeq),
		}
	}
	if g := e.Gap; g != nil {
		return &model.OutputGap{AfterSeq: int(g.AfterSeq), NextSeq: int(g.NextSeq)}
	}
	ch := e.Chunk
	return &model.OutputChunk{Seq: int(ch.Seq), Stream: ch.Stream, Data: ch.Data, At: ch.At}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
