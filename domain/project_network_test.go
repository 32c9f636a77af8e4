package domain

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
)

// networkRepo is an in-memory ProjectNetworkRepository.
type networkRepo struct {
	mu    sync.Mutex
	set   map[string]ProjectNetwork
	err   error
	audit *auditLog
}

var _ ProjectNetworkRepository = (*networkRepo)(nil)

func (r *networkRepo) SetProjectNetwork(_ context.Context, id string, n ProjectNetwork, audit *AuditEntry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n == "" {
		delete(r.set, id)
	} else {
		r.set[id] = n
	}
	if audit != nil {
		_ = r.audit.add(audit)
	}
	return nil
}

func (r *networkRepo) FindProjectNetworks(_ context.Context, ids []string) (map[string]ProjectNetwork, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return nil, r.err
	}
	out := map[string]ProjectNetwork{}
	for _, id := range ids {
		if n, ok := r.set[id]; ok {
			out[id] = n
		}
	}
	return out, nil
}

func newTestNetworkService(def ProjectNetwork, enforced bool) (*ProjectNetworkService, *networkRepo) {
	repo := &networkRepo{set: map[string]ProjectNetwork{}, audit: newAuditLog()}
	projects := newProjectRepo(&Project{ID: "pay", Status: ProjectRunning}, &Project{ID: "search", Status: ProjectRunning})
	return NewProjectNetworkService(repo, projects, NewAuditService(repo.audit, nil), def, enforced), repo
}

func TestProjectNetworkService_Set(t *testing.T) {
	admin := func(tb testing.TB, projects ...string) context.Context {
		return secretKey(tb, []Scope{ScopeAdmin}, projects...)
	}
	t.Run("OK", func(t *testing.T) {
		s, repo := newTestNetworkService(NetworkLoopback, true)
		ctx := admin(t)
		if n, err := s.Set(ctx, "pay", NetworkNone); err != nil || n != NetworkNone {
			t.Fatalf("Set NONE = %s, %v", n, err)
		}
		got, err := s.Of(ctx, []string{"pay", "search"})
		if err != nil || got["pay"] != NetworkNone || got["search"] != NetworkLoopback {
			t.Errorf("Of = %v, %v; want pay NONE, search the default, LOOPBACK", got, err)
		}
		if _, err := s.Of(context.Background(), []string{"pay"}); ErrorCode(err) != EUNAUTHENTICATED {
			t.Errorf("Of without a key = %v, want EUNAUTHENTICATED", err)
		}
		if n, err := s.Set(ctx, "pay", ""); err != nil || n != NetworkLoopback {
			t.Fatalf("reset = %s, %v; want the default", n, err)
		}
		if len(repo.set) != 0 {
			t.Errorf("a reset left %v", repo.set)
		}
		entries := repo.audit.all()
		if len(entries) != 2 || entries[0].Action != AuditProjectNetwork || entries[0].Details["network"] != "NONE" ||
			entries[0].Details[AuditProjectDetail] != "pay" || entries[1].Details["network"] != "DEFAULT" {
			t.Errorf("audit = %+v", entries)
		}
	})
	refused := []struct {
		name     string
		ctx      func(testing.TB) context.Context
		project  string
		n        ProjectNetwork
		enforced bool
		want     string
	}{
		{"ErrForbidden", func(tb testing.TB) context.Context {
			return secretKey(tb, []Scope{ScopeProjectsRead, ScopeCommandsWrite, ScopeSecretsWrite})
		}, "pay", NetworkNone, true, EFORBIDDEN},
		{"ErrUnauthenticated", func(testing.TB) context.Context { return context.Background() }, "pay", NetworkNone, true, EUNAUTHENTICATED},
		{"ErrInvalid", func(tb testing.TB) context.Context { return admin(tb) }, "pay", "SOME", true, EINVALID},
		{"ErrNotFound", func(tb testing.TB) context.Context { return admin(tb) }, "gone", NetworkNone, true, ENOTFOUND},
		{"ErrOutOfScope", func(tb testing.TB) context.Context { return admin(tb, "search") }, "pay", NetworkNone, true, ENOTFOUND},
		{"ErrNotEnforced", func(tb testing.TB) context.Context { return admin(tb) }, "pay", NetworkLoopback, false, EINVALID},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			s, repo := newTestNetworkService(NetworkAny, tt.enforced)
			if _, err := s.Set(tt.ctx(t), tt.project, tt.n); ErrorCode(err) != tt.want {
				t.Fatalf("Set = %v, want %s", err, tt.want)
			}
			if len(repo.set) != 0 {
				t.Errorf("stored %v", repo.set)
			}
		})
	}
	t.Run("AnyWithoutEnforcing", func(t *testing.T) {
		s, _ := newTestNetworkService(NetworkAny, false)
		if n, err := s.Set(admin(t), "pay", NetworkAny); err != nil || n != NetworkAny {
			t.Errorf("Set ANY = %s, %v", n, err)
		}
	})
}

func TestParseProjectNetwork(t *testing.T) {
	for in, want := range map[string]ProjectNetwork{"any": NetworkAny, "LOOPBACK": NetworkLoopback, "None": NetworkNone} {
		if got, err := ParseProjectNetwork(in); err != nil || got != want {
			t.Errorf("ParseProjectNetwork(%q) = %s, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "off", "loopback "} {
		if _, err := ParseProjectNetwork(in); ErrorCode(err) != EINVALID {
			t.Errorf("ParseProjectNetwork(%q) = %v, want EINVALID", in, err)
		}
	}
}

// netRecorder is an Executor that records the requests it is given.
type netRecorder struct{ got []ExecRequest }

func (r *netRecorder) Exec(_ context.Context, req ExecRequest, _, _ io.Writer) (ExecResult, error) {
	r.got = append(r.got, req)
	return ExecResult{}, nil
}

func TestProjectNetworkService_Executor(t *testing.T) {
	s, repo := newTestNetworkService(NetworkLoopback, true)
	repo.set["pay"] = NetworkNone
	rec := &netRecorder{}
	ex := s.Executor(rec)
	for _, id := range []string{"pay", "search"} {
		if _, err := ex.Exec(t.Context(), ExecRequest{Project: &Project{ID: id}, Argv: []string{"true"}}, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if len(rec.got) != 2 || rec.got[0].Network != NetworkNone || rec.got[1].Network != NetworkLoopback {
		t.Fatalf("the executor was given %+v", rec.got)
	}
	t.Run("ErrUnreadable", func(t *testing.T) {
		repo.err = Errorf(EUNAVAILABLE, "database away")
		_, err := ex.Exec(t.Context(), ExecRequest{Project: &Project{ID: "pay"}, Argv: []string{"true"}}, nil, nil)
		if ErrorCode(err) != EUNAVAILABLE || len(rec.got) != 2 {
			t.Errorf("Exec = %v after %d runs; want EUNAVAILABLE and no run", err, len(rec.got))
		}
		repo.err = errors.New("broken")
		if _, err := ex.Exec(t.Context(), ExecRequest{Project: &Project{ID: "pay"}}, nil, nil); err == nil || len(rec.got) != 2 {
			t.Errorf("Exec = %v after %d runs; want an error and no run", err, len(rec.got))
		}
	})
}
