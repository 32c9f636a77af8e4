package domain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAuditCanonical(t *testing.T) {
	e := &AuditEntry{
		Seq: 7, At: time.Date(2026, 12, 1, 9, 30, 0, 1500, time.FixedZone("x", 3600)),
		Actor: "key1", ClientIP: "192.0.2.1", UserAgent: "ua", RequestID: "r1", Action: AuditKeyCreate,
		Target: "k2", Outcome: AuditSuccess, Details: map[string]string{"b": "2", "a": "1,x"},
	}
	want := "13:rdev-audit-v1,3:abc,1:7,27:2026-12-01T08:30:00.000001Z,4:key1,9:192.0.2.1,2:ua,2:r1,10:key.create,2:k2,7:success,0:,1:2,1:a,3:1,x,1:b,1:2,"
	if got := string(AuditCanonical("abc", e)); got != want {
		t.Errorf("AuditCanonical =\n%s\nwant\n%s", got, want)
	}
	sum := sha256.Sum256([]byte(want))
	if got := AuditHash("abc", e); got != hex.EncodeToString(sum[:]) {
		t.Errorf("AuditHash = %q, want the hex SHA-256 of the encoding", got)
	}
	// Moving a byte from one field to the next changes the encoding.
	moved := *e
	moved.Actor, moved.ClientIP = "key11", "92.0.2.1"
	if string(AuditCanonical("abc", &moved)) == want {
		t.Error("fields are not delimited")
	}
	other := *e
	other.Seq = 8
	if AuditHash("abc", &other) == AuditHash("abc", e) {
		t.Error("seq is not in the hash")
	}
}

func TestAuditService_Redact(t *testing.T) {
	s := NewAuditService(newAuditLog(), nil)
	env := s.redactEnv(map[string]string{"API_TOKEN": "t0k", "HOME": "/home", "db_password": "pw", "GITHUB_AUTH": "a", "PATH": "/bin"})
	want := `{"API_TOKEN":"[REDACTED]","GITHUB_AUTH":"[REDACTED]","HOME":"[REDACTED]","PATH":"[REDACTED]","db_password":"[REDACTED]"}`
	if env != want {
		t.Errorf("redactEnv =\n%s\nwant every value redacted, whatever its name:\n%s", env, want)
	}
	argv := s.redactArgv([]string{"curl", "--token=abc", "--password", "hunter2", "-v", "SECRET_X=1", "x=y", "--name", "n"})
	want = `["curl","--token=[REDACTED]","--password","[REDACTED]","-v","SECRET_X=[REDACTED]","x=y","--name","n"]`
	if argv != want {
		t.Errorf("redactArgv =\n%s\nwant\n%s", argv, want)
	}
}

// TestVerifyAudit builds a 10,000-entry chain and checks that editing,
// deleting or moving any of a sample of entries is reported at that entry.
func TestVerifyAudit(t *testing.T) {
	const n = 10_000
	intact := newAuditLog()
	for i := range n {
		_ = intact.add(&AuditEntry{At: time.Unix(int64(i), 0), Actor: "k", Action: AuditCommandExecute, Target: fmt.Sprint(i), Outcome: AuditSuccess})
	}
	head, _ := intact.AuditHead(t.Context())
	// build copies the intact chain, under the head it had.
	build := func() *auditLog {
		l := newAuditLog()
		for _, e := range intact.entries {
			cp := *e
			l.entries = append(l.entries, &cp)
		}
		return l
	}
	ctx := t.Context()
	if r, err := VerifyAudit(ctx, build()); err != nil || r.Break != nil || r.Entries != n {
		t.Fatalf("VerifyAudit(intact) = %+v, %v", r, err)
	}
	positions := []int{1, 2, n / 2, n - 1, n}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for range 5 {
		positions = append(positions, 1+rng.IntN(n))
	}
	tampers := []struct {
		name string
		do   func(l *auditLog, seq int) (want int64)
	}{
		{"edit", func(l *auditLog, seq int) int64 { l.entries[seq-1].Target = "evil"; return int64(seq) }},
		{"edit details", func(l *auditLog, seq int) int64 {
			l.entries[seq-1].Details = map[string]string{"x": "y"}
			return int64(seq)
		}},
		{"edit and rehash", func(l *auditLog, seq int) int64 {
			e := l.entries[seq-1]
			e.Target = "evil"
			e.Hash = AuditHash(e.PrevHash, e)
			if seq == n {
				return int64(seq) // the head no longer matches
			}
			return int64(seq + 1)
		}},
		{"delete", func(l *auditLog, seq int) int64 {
			l.entries = append(l.entries[:seq-1], l.entries[seq:]...)
			return int64(seq)
		}},
		{"swap", func(l *auditLog, seq int) int64 {
			a := seq - 1
			if a == n-1 {
				a--
			}
			l.entries[a], l.entries[a+1] = l.entries[a+1], l.entries[a]
			l.entries[a].Seq, l.entries[a+1].Seq = l.entries[a+1].Seq, l.entries[a].Seq
			return int64(a + 1)
		}},
	}
	for _, tt := range tampers {
		for _, seq := range positions {
			l := build()
			want := tt.do(l, seq)
			r, err := VerifyAudit(ctx, fixedHead{l, head})
			if err != nil {
				t.Fatal(err)
			}
			if r.Break == nil || r.Break.Seq != want {
				t.Errorf("%s at %d: break %+v, want at entry %d", tt.name, seq, r.Break, want)
			}
		}
	}
}

// fixedHead is a log whose chain head stays as it was while its entries
// are changed beneath it, as the store's head row does.
type fixedHead struct {
	*auditLog
	head AuditHead
}

func (f fixedHead) AuditHead(context.Context) (AuditHead, error) { return f.head, nil }

// TestCommandService_AuditFails checks that a command whose entry cannot be
// written is neither queued nor run, and that the caller is told.
func TestCommandService_AuditFails(t *testing.T) {
	e := newCommandEnv(t)
	e.startDispatcher(t, testDispatcherConfig())
	e.repo.audit.setErr(errors.New("disk full"))
	_, err := e.svc.Execute(keyContext(t, writerKey), ExecuteCommand{ProjectID: "web", Argv: []string{"rm", "-rf", "/"}})
	if err == nil || ErrorCode(err) != EINTERNAL {
		t.Fatalf("Execute = %v, want an internal error", err)
	}
	// Let the dispatcher look at the queue a few times.
	var claims int
	e.repo.set(func(r *commandRepo) { claims = r.claims })
	waitFor(t, "the dispatcher to poll", func() bool {
		var now int
		e.repo.set(func(r *commandRepo) { now = r.claims })
		return now >= claims+3
	})
	if cs, _ := e.repo.FindCommands(t.Context(), CommandFilter{}); len(cs) != 0 {
		t.Errorf("queued %d commands without an audit entry", len(cs))
	}
	e.exec.mu.Lock()
	started := len(e.exec.started)
	e.exec.mu.Unlock()
	if started != 0 {
		t.Errorf("ran %d commands without an audit entry", started)
	}
}

func TestCommandService_Audit(t *testing.T) {
	e := newCommandEnv(t)
	ctx := NewContextWithCaller(t.Context(), &Caller{Key: writerKey, Addr: netip.MustParseAddr("2001:db8::1"), UserAgent: "ua", RequestID: "r1"})
	c, err := e.svc.Execute(ctx, ExecuteCommand{ProjectID: "web", Argv: []string{"env"}, Env: []EnvVar{{Name: "MY_SECRET", Value: "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Execute(ctx, ExecuteCommand{ProjectID: "asleep", Argv: []string{"true"}}); ErrorCode(err) != ECONFLICT {
		t.Fatalf("Execute(asleep) = %v", err)
	}
	if _, err := e.svc.Cancel(keyContext(t, readerKey), c.ID); ErrorCode(err) != EFORBIDDEN {
		t.Fatalf("Cancel(reader) = %v", err)
	}
	if _, err := e.svc.Cancel(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	// Nobody authenticated: refused, and not recorded.
	if _, err := e.svc.Execute(t.Context(), ExecuteCommand{ProjectID: "web", Argv: []string{"true"}}); ErrorCode(err) != EUNAUTHENTICATED {
		t.Fatalf("Execute(anonymous) = %v", err)
	}
	var got []string
	for _, en := range e.repo.audit.all() {
		got = append(got, fmt.Sprintf("%d %s %s %s %s %s", en.Seq, en.Actor, en.Action, en.Target, en.Outcome, en.ErrorCode))
	}
	want := []string{
		"1 " + writerKey.ID + " command.execute " + c.ID + " success ",
		"2 " + writerKey.ID + " command.execute  failed CONFLICT",
		"3 " + readerKey.ID + " command.cancel " + c.ID + " denied FORBIDDEN",
		"4 " + writerKey.ID + " command.cancel " + c.ID + " success ",
		// Cancelled while queued, so it ended then: its end is recorded too.
		"5 " + writerKey.ID + " command.finish " + c.ID + " success ",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	first := e.repo.audit.all()[0]
	if first.ClientIP != "2001:db8::1" || first.UserAgent != "ua" || first.RequestID != "r1" ||
		first.Details["env"] != `{"MY_SECRET":"[REDACTED]"}` || first.Details["project"] != "web" {
		t.Errorf("execute entry %+v", first)
	}
}

// A retry with the same client token queues nothing but is recorded.
func TestCommandService_AuditReplay(t *testing.T) {
	e := newCommandEnv(t)
	in := ExecuteCommand{ProjectID: "web", Argv: []string{"true"}, ClientToken: "once"}
	first := mustExecute(t, e, in)
	again := mustExecute(t, e, in)
	if again.ID != first.ID {
		t.Fatalf("replay queued %s, want %s", again.ID, first.ID)
	}
	es := e.repo.audit.all()
	if len(es) != 2 || es[1].Target != first.ID || es[1].Details["replayOf"] != first.ID || es[1].Outcome != AuditSuccess {
		t.Errorf("entries %+v, want the execute and its replay", es)
	}
	e.repo.audit.setErr(errors.New("disk full"))
	if _, err := e.svc.Execute(keyContext(t, writerKey), in); err == nil {
		t.Error("a replay whose entry failed succeeded")
	}
}

// FuzzAuditCanonical checks that the encoding is injective: entries (with
// their previous hashes) that differ never encode alike.
func FuzzAuditCanonical(f *testing.F) {
	f.Add("a", "b", "c", "k", "v", "a", "b", "c", "k", "v")
	f.Add("a,", "b", "1:", "", "", "a", ",b", "1:", "", "")
	f.Fuzz(func(t *testing.T, p1, a1, t1, k1, v1, p2, a2, t2, k2, v2 string) {
		e1 := &AuditEntry{Seq: 1, Actor: a1, Target: t1, Details: map[string]string{k1: v1}}
		e2 := &AuditEntry{Seq: 1, Actor: a2, Target: t2, Details: map[string]string{k2: v2}}
		same := [5]string{p1, a1, t1, k1, v1} == [5]string{p2, a2, t2, k2, v2}
		if !same && string(AuditCanonical(p1, e1)) == string(AuditCanonical(p2, e2)) {
			t.Errorf("%+v (prev %q) and %+v (prev %q) encode alike", e1, p1, e2, p2)
		}
	})
}
