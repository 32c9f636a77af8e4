package domain

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// agentRuns is an in-memory AgentRunRepository.
type agentRuns struct {
	mu    sync.Mutex
	byID  map[string]AgentSummary
	saves int
	// saveErr, if set, fails every save.
	saveErr error
	// spend is what AgentSpend returns; spendAsked what it was asked.
	spend      AgentSpend
	spendAsked []string
}

func (r *agentRuns) AgentSpend(_ context.Context, since time.Time, project, key string) (AgentSpend, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.spendAsked = append(r.spendAsked, since.Format(time.DateTime)+" "+project+" "+key)
	return r.spend, nil
}

func (r *agentRuns) SaveAgentSummary(_ context.Context, s *AgentSummary) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.saves++
	if r.saveErr != nil {
		return r.saveErr
	}
	if r.byID == nil {
		r.byID = map[string]AgentSummary{}
	}
	if _, ok := r.byID[s.CommandID]; !ok {
		r.byID[s.CommandID] = *s
	}
	return nil
}

func (r *agentRuns) FindAgentSummary(_ context.Context, id string) (*AgentSummary, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.byID[id]
	if !ok {
		return nil, Errorf(ENOTFOUND, "no summary of %s", id)
	}
	return &s, nil
}

func (r *agentRuns) FindAgentSessions(_ context.Context, project string, limit int) ([]*AgentSession, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	by := map[string]*AgentSession{}
	for _, s := range r.byID {
		f := s.Finished
		if s.ProjectID != project || f.SessionID == "" {
			continue
		}
		a := by[f.SessionID]
		if a == nil {
			a = &AgentSession{ID: f.SessionID, ProjectID: project}
			by[f.SessionID] = a
		}
		a.Runs++
		a.CostUSD += f.CostUSD
		a.InputTokens += f.InputTokens
		a.OutputTokens += f.OutputTokens
		a.CacheReadTokens += f.CacheReadTokens
		if s.EndedAt.After(a.LastActiveAt) {
			a.LastActiveAt = s.EndedAt
		}
	}
	out := make([]*AgentSession, 0, len(by))
	for _, a := range by {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b *AgentSession) int {
		return cmp.Or(b.LastActiveAt.Compare(a.LastActiveAt), cmp.Compare(a.ID, b.ID))
	})
	return out[:min(limit, len(out))], nil
}

func TestAgentService_Record(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		e, s := newAgentEnv(t)
		runs := &agentRuns{}
		s.RecordSummariesIn(runs)
		c := runTranscript(t, e, s, "claude-tool.jsonl", 97)
		for range 2 {
			if err := s.Record(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		sum, err := runs.FindAgentSummary(context.Background(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		ctx := keyContext(t, readerKey)
		parsed, err := NewAgentService(e.svc, s.protocols, ClaudeCodeProtocol).Get(ctx, c.ID)
		if err != nil || parsed.Finished == nil {
			t.Fatalf("parsed run %+v, %v", parsed, err)
		}
		if sum.Finished != *parsed.Finished || sum.Seq != parsed.FinishedAt.Seq || sum.Index != parsed.FinishedAt.Index ||
			sum.ProjectID != "web" || !sum.EndedAt.Equal(*c.FinishedAt) {
			t.Errorf("stored %+v, want the parsed %+v at %d/%d", sum, parsed.Finished, parsed.FinishedAt.Seq, parsed.FinishedAt.Index)
		}

		// Get reads the stored summary, not the output.
		runs.mu.Lock()
		stored := runs.byID[c.ID]
		stored.Finished.Result = "from the store"
		runs.byID[c.ID] = stored
		runs.mu.Unlock()
		run, err := s.Get(ctx, c.ID)
		if err != nil || run.Finished == nil || run.Finished.Result != "from the store" || run.Started == nil || run.SessionID() == "" {
			t.Errorf("Get = %+v, %v; want the stored summary and the start from the output", run, err)
		}
	})

	t.Run("NotAgentRun", func(t *testing.T) {
		e, s := newAgentEnv(t)
		runs := &agentRuns{}
		s.RecordSummariesIn(runs)
		c := mustExecute(t, e, ls())
		c.Status = CommandSucceeded
		if err := s.Record(context.Background(), c); err != nil || runs.saves != 0 {
			t.Errorf("Record(plain command) = %v, %d saves; want nothing", err, runs.saves)
		}
	})

	t.Run("ErrSave", func(t *testing.T) {
		e, s := newAgentEnv(t)
		runs := &agentRuns{saveErr: errors.New("disk full")}
		s.RecordSummariesIn(runs)
		c := runTranscript(t, e, s, "claude-tool.jsonl", 4096)
		if err := s.Record(context.Background(), c); err == nil {
			t.Error("Record hid a failed save")
		}
		// Without a stored summary, the output still tells.
		if run, err := s.Get(keyContext(t, readerKey), c.ID); err != nil || run.Finished == nil {
			t.Errorf("Get = %+v, %v; want the summary parsed from the output", run, err)
		}
	})
}

func TestAgentService_Sessions(t *testing.T) {
	e, s := newAgentEnv(t)
	runs := &agentRuns{}
	s.RecordSummariesIn(runs)
	var cost float64
	for range 2 {
		c := runTranscript(t, e, s, "claude-tool.jsonl", 4096)
		if err := s.Record(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		cost += runs.byID[c.ID].Finished.CostUSD
	}
	got, err := s.Sessions(keyContext(t, readerKey), "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The transcript is one session: both runs are in it.
	if len(got) != 1 || got[0].Runs != 2 || got[0].CostUSD != cost || got[0].ID == "" {
		t.Errorf("sessions %+v, want one of 2 runs costing %v", got, cost)
	}

	for name, tt := range map[string]struct {
		key     *APIKey
		project string
		first   *int
		code    string
	}{
		"ErrForbidden":  {&APIKey{ID: "0000nokeyscope00", Scopes: Scopes{ScopeProjectsRead}}, "web", nil, EFORBIDDEN},
		"ErrOutOfScope": {&APIKey{ID: "0000scopedkey000", Scopes: Scopes{ScopeCommandsRead}, Projects: ProjectScope{Names: []string{"api"}}}, "web", nil, ENOTFOUND},
		"ErrFirst":      {readerKey, "web", ptr(0), EINVALID},
		"ErrFirstBig":   {readerKey, "web", ptr(101), EINVALID},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Sessions(keyContext(t, tt.key), tt.project, tt.first)
			wantCode(t, err, tt.code)
		})
	}
}
