package storetest

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// AuditStore is a store whose state-changing methods append audit entries.
type AuditStore interface {
	domain.AuditRepository
	domain.CommandRepository
	domain.APIKeyRepository
	// SignAuditWith makes the entries appended from now on MACed with
	// keys' signing key (nil: unkeyed).
	SignAuditWith(keys *domain.AuditKeyring)
}

// AuditDB lets the audit contract tests reach under the store, to tamper
// with the log as someone with database access could.
type AuditDB struct {
	// Exec runs SQL with bun's ? placeholders on the store's database.
	Exec func(ctx context.Context, query string, args ...any) error
	// Postgres selects the dialect of the SQL used to lift the append-only
	// triggers.
	Postgres bool
}

// TestAuditRepository runs the domain.AuditRepository contract and checks
// that the state-changing methods of the other ports append their entries
// in their own transaction. newStore is called once per subtest and must
// return an empty store that no other subtest uses.
func TestAuditRepository(t *testing.T, newStore func(t *testing.T) (AuditStore, AuditDB)) {
	tests := []struct {
		name string
		fn   func(*testing.T, func(*testing.T) (AuditStore, AuditDB))
	}{
		{"AppendAudit", testAppendAudit},
		{"FindAuditEntries", testFindAuditEntries},
		{"SameTransaction", testAuditSameTransaction},
		{"AuditWriteFails", testAuditWriteFails},
		{"AppendOnly", testAuditAppendOnly},
		{"Tamper", testAuditTamper},
		{"Keyed", testAuditKeyed},
		{"TamperEditedRow", testAuditTamperEditedRow},
		{"TamperDeletedRow", testAuditTamperDeletedRow},
		{"TamperCutTail", testAuditTamperCutTail},
		{"TamperRewoundHead", testAuditTamperRewoundHead},
		{"TamperRecomputed", testAuditTamperRecomputed},
		{"ForgedCheckpoint", testAuditForgedCheckpoint},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore)
		})
	}
}

var auditBase = time.Date(2026, 12, 1, 9, 30, 0, 123456789, time.UTC)

// auditEntry returns an unsealed entry with every field set.
func auditEntry(i int) *domain.AuditEntry {
	return &domain.AuditEntry{
		At:    auditBase.Add(time.Duration(i) * time.Second).In(elsewhere),
		Actor: fmt.Sprintf("key%d", i%3), ClientIP: "2001:db8::7", UserAgent: "curl/8.5 'ünïcode' \"q\"",
		RequestID: fmt.Sprintf("req-%d", i), Action: []string{domain.AuditCommandExecute, domain.AuditKeyCreate}[i%2],
		Target: fmt.Sprintf("target%d", i%5), Outcome: domain.AuditSuccess,
		Details: map[string]string{"argv": `["sh","-c","echo \"x\" ? $1"]`, "i": fmt.Sprint(i), "empty": ""},
	}
}

func mustAppend(tb testing.TB, ctx context.Context, repo domain.AuditRepository, es ...*domain.AuditEntry) {
	tb.Helper()
	if err := repo.AppendAudit(ctx, es...); err != nil {
		tb.Fatalf("AppendAudit: %v", err)
	}
}

func mustReadChain(tb testing.TB, ctx context.Context, repo domain.AuditRepository) []*domain.AuditEntry {
	tb.Helper()
	var all []*domain.AuditEntry
	for {
		es, err := repo.ReadAuditChain(ctx, int64(len(all)), 1000)
		if err != nil {
			tb.Fatalf("ReadAuditChain: %v", err)
		}
		all = append(all, es...)
		if len(es) < 1000 {
			return all
		}
	}
}

func mustVerify(tb testing.TB, ctx context.Context, repo domain.AuditRepository) domain.AuditReport {
	tb.Helper()
	r, err := domain.VerifyAudit(ctx, repo)
	if err != nil {
		tb.Fatalf("VerifyAudit: %v", err)
	}
	return r
}

// assertIntact fails unless the chain verifies and holds n entries.
func assertIntact(tb testing.TB, ctx context.Context, repo domain.AuditRepository, n int64) {
	tb.Helper()
	r := mustVerify(tb, ctx, repo)
	if r.Break != nil || r.Entries != n {
		tb.Fatalf("VerifyAudit = %d entries, break %+v; want %d intact", r.Entries, r.Break, n)
	}
}

func testAppendAudit(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	repo, _ := newStore(t)
	ctx := t.Context()
	assertIntact(t, ctx, repo, 0)
	var want []*domain.AuditEntry
	for i := range 5 {
		e := auditEntry(i)
		if i == 3 {
			e.Details, e.Outcome, e.ErrorCode = nil, domain.AuditDenied, domain.EFORBIDDEN
		}
		want = append(want, e)
	}
	mustAppend(t, ctx, repo, want[0])
	mustAppend(t, ctx, repo, want[1:]...)
	mustAppend(t, ctx, repo) // nothing
	for i, e := range want {
		if e.Seq != int64(i+1) || e.Hash == "" {
			t.Fatalf("entry %d sealed as seq %d hash %q", i, e.Seq, e.Hash)
		}
		e.At = e.At.UTC().Truncate(time.Microsecond)
	}
	got := mustReadChain(t, ctx, repo)
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		t.Errorf("stored entries differ (-appended +read):\n%s", diff)
	}
	for i, e := range got {
		assertUTC(t, "entry", &e.At)
		if i > 0 && e.PrevHash != got[i-1].Hash {
			t.Errorf("entry %d: prevHash %q, want %q", e.Seq, e.PrevHash, got[i-1].Hash)
		}
	}
	head, err := repo.AuditHead(ctx)
	if err != nil || head != (domain.AuditHead{Seq: 5, Hash: want[4].Hash}) {
		t.Errorf("AuditHead = %+v, %v; want seq 5, hash %s", head, err, want[4].Hash)
	}
	assertIntact(t, ctx, repo, 5)
}

func testFindAuditEntries(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	repo, _ := newStore(t)
	ctx := t.Context()
	var all []*domain.AuditEntry
	for i := range 30 {
		all = append(all, auditEntry(i))
	}
	mustAppend(t, ctx, repo, all...)
	seqs := func(es []*domain.AuditEntry) []int64 {
		out := []int64{}
		for _, e := range es {
			out = append(out, e.Seq)
		}
		return out
	}
	expect := func(keep func(i int, e *domain.AuditEntry) bool, limit int) []int64 {
		out := []int64{}
		for i := len(all) - 1; i >= 0; i-- {
			if keep(i, all[i]) && (limit == 0 || len(out) < limit) {
				out = append(out, all[i].Seq)
			}
		}
		return out
	}
	tests := []struct {
		name string
		f    domain.AuditFilter
		keep func(i int, e *domain.AuditEntry) bool
	}{
		{"All", domain.AuditFilter{}, func(int, *domain.AuditEntry) bool { return true }},
		{"Actor", domain.AuditFilter{Actor: "key1"}, func(i int, _ *domain.AuditEntry) bool { return i%3 == 1 }},
		{"Action", domain.AuditFilter{Action: domain.AuditKeyCreate}, func(i int, _ *domain.AuditEntry) bool { return i%2 == 1 }},
		{"Target", domain.AuditFilter{Target: "target2"}, func(i int, _ *domain.AuditEntry) bool { return i%5 == 2 }},
		{"Since", domain.AuditFilter{Since: all[10].At}, func(i int, _ *domain.AuditEntry) bool { return i >= 10 }},
		{"Until", domain.AuditFilter{Until: all[10].At}, func(i int, _ *domain.AuditEntry) bool { return i < 10 }},
		{"BeforeSeq", domain.AuditFilter{BeforeSeq: 7}, func(i int, _ *domain.AuditEntry) bool { return i < 6 }},
		{"Combined", domain.AuditFilter{Actor: "key0", Action: domain.AuditCommandExecute, Since: all[3].At, Until: all[25].At},
			func(i int, _ *domain.AuditEntry) bool { return i%6 == 0 && i >= 3 && i < 25 }},
	}
	for _, tt := range tests {
		for _, limit := range []int{0, 2} {
			f := tt.f
			f.Limit = limit
			got, err := repo.FindAuditEntries(ctx, f)
			if err != nil {
				t.Fatalf("%s: FindAuditEntries: %v", tt.name, err)
			}
			if diff := cmp.Diff(expect(tt.keep, limit), seqs(got)); diff != "" {
				t.Errorf("%s, limit %d: seqs differ (-want +got):\n%s", tt.name, limit, diff)
			}
		}
	}
}

// testAuditSameTransaction checks that each state-changing method appends
// its entry, and only when its change is made.
func testAuditSameTransaction(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	repo, _ := newStore(t)
	ctx := t.Context()
	entry := func(action, target string) *domain.AuditEntry {
		return &domain.AuditEntry{At: time.Now(), Actor: "key1", Action: action, Target: target, Outcome: domain.AuditSuccess}
	}
	k := newAPIKey()
	if err := repo.CreateAPIKey(ctx, k, entry(domain.AuditKeyCreate, k.ID)); err != nil {
		t.Fatalf("CreateAPIKey: %v", err)
	}
	if _, err := repo.UpdateAPIKey(ctx, k.ID, func(k *domain.APIKey) error { k.Name = "renamed"; return nil },
		entry(domain.AuditKeyRevoke, k.ID)); err != nil {
		t.Fatalf("UpdateAPIKey: %v", err)
	}
	// A failed update appends nothing.
	if _, err := repo.UpdateAPIKey(ctx, k.ID, func(*domain.APIKey) error { return domain.Errorf(domain.EFORBIDDEN, "no") },
		entry(domain.AuditKeyRotate, k.ID)); domain.ErrorCode(err) != domain.EFORBIDDEN {
		t.Fatalf("UpdateAPIKey refused: %v, want FORBIDDEN", err)
	}
	c1, c2, c3 := newCommand("web", 1), newCommand("web", 2), newCommand("web", 3)
	for _, c := range []*domain.Command{c1, c2, c3} {
		if err := repo.CreateCommand(ctx, c, entry(domain.AuditCommandExecute, c.ID)); err != nil {
			t.Fatalf("CreateCommand: %v", err)
		}
	}
	// A conflicting command appends nothing.
	dup := newCommand("web", 1)
	dup.ID = c1.ID
	if err := repo.CreateCommand(ctx, dup, entry(domain.AuditCommandExecute, "dup")); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("CreateCommand(duplicate) = %v, want CONFLICT", err)
	}
	if _, err := repo.RequestCancel(ctx, c1.ID, "by test", time.Now(), entry(domain.AuditCommandCancel, c1.ID)); err != nil {
		t.Fatalf("RequestCancel: %v", err)
	}
	if _, err := repo.RequestCancel(ctx, c1.ID, "again", time.Now(), entry(domain.AuditCommandCancel, "ended")); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("RequestCancel(ended) = %v, want CONFLICT", err)
	}
	now := time.Now()
	claimed := mustClaim(t, ctx, repo, domain.ClaimRequest{Owner: "d1", Max: 2, LeaseUntil: now.Add(time.Minute), Now: now})
	if len(claimed) != 2 {
		t.Fatalf("claimed %d commands, want 2", len(claimed))
	}
	fin := domain.Finish{Status: domain.CommandSucceeded, ExitCode: ptr(0), FinishedAt: now}
	if _, err := repo.FinishCommand(ctx, domain.Lease{CommandID: c2.ID, Owner: "d1", Epoch: 1}, fin, entry(domain.AuditCommandFinish, c2.ID)); err != nil {
		t.Fatalf("FinishCommand: %v", err)
	}
	other := fin
	other.Status, other.ExitCode = domain.CommandFailed, ptr(1)
	if _, err := repo.FinishCommand(ctx, domain.Lease{CommandID: c2.ID, Owner: "d1", Epoch: 1}, other, entry(domain.AuditCommandFinish, "twice")); domain.ErrorCode(err) != domain.ECONFLICT {
		t.Fatalf("FinishCommand(again) = %v, want CONFLICT", err)
	}
	expired, err := repo.ExpireLeases(ctx, now.Add(2*time.Minute), func(c *domain.Command) *domain.AuditEntry {
		return domain.ExpiredEntry(c)
	})
	if err != nil || len(expired) != 1 || expired[0].ID != c3.ID {
		t.Fatalf("ExpireLeases = %v, %v; want %s", expired, err, c3.ID)
	}

	got := mustReadChain(t, ctx, repo)
	var actions []string
	for _, e := range got {
		actions = append(actions, e.Action+" "+e.Target)
	}
	want := []string{
		domain.AuditKeyCreate + " " + k.ID, domain.AuditKeyRevoke + " " + k.ID,
		domain.AuditCommandExecute + " " + c1.ID, domain.AuditCommandExecute + " " + c2.ID, domain.AuditCommandExecute + " " + c3.ID,
		domain.AuditCommandCancel + " " + c1.ID, domain.AuditCommandFinish + " " + c1.ID,
		domain.AuditCommandFinish + " " + c2.ID, domain.AuditCommandFinish + " " + c3.ID,
	}
	if diff := cmp.Diff(want, actions); diff != "" {
		t.Errorf("audit entries differ (-want +got):\n%s", diff)
	}
	if last := got[len(got)-1]; last.Details["status"] != string(domain.CommandInterrupted) || last.Actor != "key1" {
		t.Errorf("expired command's entry = %+v, want an INTERRUPTED finish by key1", last)
	}
	assertIntact(t, ctx, repo, int64(len(want)))
}

// testAuditWriteFails makes the audit insert fail and checks that every
// change whose entry could not be written was not made either.
func testAuditWriteFails(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	repo, db := newStore(t)
	ctx := t.Context()
	entry := func(action string) *domain.AuditEntry {
		return &domain.AuditEntry{At: time.Now(), Actor: "key1", Action: action, Outcome: domain.AuditSuccess}
	}
	k := newAPIKey()
	if err := repo.CreateAPIKey(ctx, k, nil); err != nil {
		t.Fatal(err)
	}
	queued, running, expiring := newCommand("web", 1), newCommand("web", 2), newCommand("web", 3)
	now := time.Now()
	mustCreateCommand(t, ctx, repo, running)
	mustClaim(t, ctx, repo, domain.ClaimRequest{Owner: "d1", Max: 1, LeaseUntil: now.Add(time.Minute), Now: now})
	mustCreateCommand(t, ctx, repo, expiring)
	mustClaim(t, ctx, repo, domain.ClaimRequest{Owner: "d2", Max: 1, LeaseUntil: now.Add(time.Second), Now: now})
	mustCreateCommand(t, ctx, repo, queued)

	// The table is moved away: every insert into audit_log fails.
	if err := db.Exec(ctx, "ALTER TABLE audit_log RENAME TO audit_log_away"); err != nil {
		t.Fatal(err)
	}
	fresh := newCommand("web", 4)
	if err := repo.CreateCommand(ctx, fresh, entry(domain.AuditCommandExecute)); err == nil {
		t.Error("CreateCommand succeeded without its audit entry")
	}
	if _, err := repo.FindCommandByID(ctx, fresh.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("the command whose entry failed was stored: %v", err)
	}
	other := newAPIKey()
	if err := repo.CreateAPIKey(ctx, other, entry(domain.AuditKeyCreate)); err == nil {
		t.Error("CreateAPIKey succeeded without its audit entry")
	}
	if _, err := repo.FindAPIKeyByID(ctx, other.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
		t.Errorf("the key whose entry failed was stored: %v", err)
	}
	if _, err := repo.UpdateAPIKey(ctx, k.ID, func(k *domain.APIKey) error { k.Name = "changed"; return nil }, entry(domain.AuditKeyRevoke)); err == nil {
		t.Error("UpdateAPIKey succeeded without its audit entry")
	}
	if got, _ := repo.FindAPIKeyByID(ctx, k.ID); got == nil || got.Name != k.Name {
		t.Errorf("the key whose entry failed was changed: %+v", got)
	}
	if _, err := repo.RequestCancel(ctx, queued.ID, "x", now, entry(domain.AuditCommandCancel)); err == nil {
		t.Error("RequestCancel succeeded without its audit entry")
	}
	// Concurrent finishes share a batch; a failing entry fails them all.
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = repo.FinishCommand(ctx, domain.Lease{CommandID: running.ID, Owner: "d1", Epoch: 1}, domain.Finish{Status: domain.CommandSucceeded, ExitCode: ptr(0), FinishedAt: now},
				entry(domain.AuditCommandFinish))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			t.Errorf("FinishCommand #%d succeeded without its audit entry", i)
		}
	}
	if _, err := repo.ExpireLeases(ctx, now.Add(time.Hour), domain.ExpiredEntry); err == nil {
		t.Error("ExpireLeases succeeded without its audit entries")
	}
	for id, want := range map[string]domain.CommandStatus{queued.ID: domain.CommandQueued, running.ID: domain.CommandRunning, expiring.ID: domain.CommandRunning} {
		if c := mustFindCommand(t, ctx, repo, id); c.Status != want {
			t.Errorf("command %s is %s after its entry failed, want %s", id, c.Status, want)
		}
	}
	if err := db.Exec(ctx, "ALTER TABLE audit_log_away RENAME TO audit_log"); err != nil {
		t.Fatal(err)
	}
	assertIntact(t, ctx, repo, 0)
}

func testAuditAppendOnly(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	repo, db := newStore(t)
	ctx := t.Context()
	mustAppend(t, ctx, repo, auditEntry(0), auditEntry(1))
	for _, q := range []string{
		"UPDATE audit_log SET actor = 'mallory' WHERE seq = 1",
		"UPDATE audit_log SET hash = hash",
		"DELETE FROM audit_log WHERE seq = 2",
		"DELETE FROM audit_log",
		"UPDATE audit_chain_head SET seq = 1",
		"DELETE FROM audit_chain_head",
	} {
		err := db.Exec(ctx, q)
		if err == nil {
			t.Errorf("%s: succeeded on the append-only log", q)
		} else if !strings.Contains(err.Error(), "audit_log is append-only") && !strings.Contains(err.Error(), "audit_chain_head only moves forward") {
			t.Errorf("%s: %v, want the trigger's refusal", q, err)
		}
	}
	if db.Postgres {
		if err := db.Exec(ctx, "TRUNCATE audit_log"); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("TRUNCATE: %v, want the trigger's refusal", err)
		}
	}
	assertIntact(t, ctx, repo, 2)
}

// auditChainSize is the length of the chain the tamper test works on.
const auditChainSize = 10_000

// testAuditTamper builds a long chain and checks that editing, deleting or
// reordering an entry anywhere is found by VerifyAudit at that entry. Each
// change is undone before the next.
func testAuditTamper(t *testing.T, newStore func(*testing.T) (AuditStore, AuditDB)) {
	repo, db := newStore(t)
	ctx := t.Context()
	n := auditChainSize
	if testing.Short() {
		n = 1000
	}
	batch := make([]*domain.AuditEntry, 0, 1000)
	for i := range n {
		batch = append(batch, auditEntry(i))
		if len(batch) == cap(batch) || i == n-1 {
			mustAppend(t, ctx, repo, batch...)
			batch = batch[:0]
		}
	}
	assertIntact(t, ctx, repo, int64(n))
	liftTriggers(t, ctx, db)

	positions := []int64{1, 2, int64(n / 2), int64(n - 1), int64(n)}
	for range 2 {
		positions = append(positions, 2+randomInt64(int64(n-2)))
	}
	expectBreak := func(what string, seq int64) {
		t.Helper()
		r := mustVerify(t, ctx, repo)
		if r.Break == nil || r.Break.Seq != seq {
			t.Errorf("%s: VerifyAudit break = %+v, want one at entry %d", what, r.Break, seq)
		} else if r.Entries != seq-1 {
			t.Errorf("%s: VerifyAudit counted %d intact entries, want %d", what, r.Entries, seq-1)
		}
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if err := db.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, seq := range positions {
		t.Logf("tampering with entry %d", seq)
		exec("UPDATE audit_log SET actor = 'mallory' WHERE seq = ?", seq)
		expectBreak(fmt.Sprintf("actor of %d edited", seq), seq)
		exec("UPDATE audit_log SET actor = ? WHERE seq = ?", fmt.Sprintf("key%d", (seq-1)%3), seq)

		exec("UPDATE audit_log SET details = ? WHERE seq = ?", `{"argv":"[]","i":"0","empty":""}`, seq)
		expectBreak(fmt.Sprintf("details of %d edited", seq), seq)
		exec("UPDATE audit_log SET details = ? WHERE seq = ?", fmt.Sprintf(`{"argv":%q,"i":"%d","empty":""}`, `["sh","-c","echo \"x\" ? $1"]`, seq-1), seq)

		exec("CREATE TABLE audit_saved AS SELECT * FROM audit_log WHERE seq = ?", seq)
		exec("DELETE FROM audit_log WHERE seq = ?", seq)
		expectBreak(fmt.Sprintf("%d deleted", seq), seq)
		exec("INSERT INTO audit_log SELECT * FROM audit_saved")
		exec("DROP TABLE audit_saved")

		// Swap the entry with its successor (its predecessor, at the end).
		a, b := seq, seq+1
		if b > int64(n) {
			a, b = seq-1, seq
		}
		exec("UPDATE audit_log SET seq = ? WHERE seq = ?", 1_000_000_000, a)
		exec("UPDATE audit_log SET seq = ? WHERE seq = ?", a, b)
		exec("UPDATE audit_log SET seq = ? WHERE seq = ?", b, 1_000_000_000)
		expectBreak(fmt.Sprintf("%d and %d swapped", a, b), a)
		exec("UPDATE audit_log SET seq = ? WHERE seq = ?", 1_000_000_000, a)
		exec("UPDATE audit_log SET seq = ? WHERE seq = ?", a, b)
		exec("UPDATE audit_log SET seq = ? WHERE seq = ?", b, 1_000_000_000)
	}
	assertIntact(t, ctx, repo, int64(n))
	// An entry edited with its hash recomputed breaks the next entry's link.
	got := mustReadChain(t, ctx, repo)
	e := got[n/2-1]
	e.Actor = "mallory"
	exec("UPDATE audit_log SET actor = 'mallory', hash = ? WHERE seq = ?", domain.AuditHash(e.PrevHash, e), e.Seq)
	expectBreak("an edit with its hash recomputed", e.Seq+1)
}

// liftTriggers drops or disables the append-only triggers (and the chain
// head's) for the rest of the test, as an attacker with database access
// could.
func liftTriggers(tb testing.TB, ctx context.Context, db AuditDB) {
	tb.Helper()
	qs := []string{"DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete", "DROP TRIGGER audit_chain_head_forward"}
	if db.Postgres {
		qs = []string{"ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change", "ALTER TABLE audit_chain_head DISABLE TRIGGER audit_chain_head_forward"}
	}
	for _, q := range qs {
		if err := db.Exec(ctx, q); err != nil {
			tb.Fatalf("%s: %v", q, err)
		}
	}
}

// TestAuditRace appends from every store at once (each store stands for one
// rdev process sharing the database): perStore goroutines per store each
// queue commands with their entries and append entries on their own. The
// chain must come out linear and complete.
func TestAuditRace(t *testing.T, stores []AuditStore, perStore, each int) {
	ctx := t.Context()
	var wg sync.WaitGroup
	errs := make(chan error, len(stores)*perStore)
	for si, s := range stores {
		for g := range perStore {
			wg.Go(func() {
				for i := range each {
					e := &domain.AuditEntry{At: time.Now(), Actor: fmt.Sprintf("store%d", si), Action: domain.AuditCommandExecute, Outcome: domain.AuditSuccess}
					var err error
					if i%2 == 0 {
						c := newCommand("web", 0)
						c.ID = domain.NewID(time.Now())
						e.Target = c.ID
						err = s.CreateCommand(ctx, c, e)
					} else {
						e.Outcome, e.ErrorCode = domain.AuditDenied, domain.EFORBIDDEN
						err = s.AppendAudit(ctx, e)
					}
					if err != nil {
						errs <- fmt.Errorf("store %d goroutine %d: %w", si, g, err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	want := int64(len(stores) * perStore * each)
	assertIntact(t, ctx, stores[0], want)
	assertIntact(t, ctx, stores[len(stores)-1], want)
}

// randomInt64 returns a random number in [0, n).
func randomInt64(n int64) int64 {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms.
	return int64(binary.BigEndian.Uint64(b[:]) % uint64(n))
}
