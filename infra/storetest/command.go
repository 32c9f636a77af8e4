package storetest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// TestCommandRepository runs the domain.CommandRepository contract. newRepo
// is called once per subtest and must return an empty repository that no
// other subtest uses; subtests run in parallel.
func TestCommandRepository(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	tests := []struct {
		name string
		fn   func(*testing.T, func(*testing.T) domain.CommandRepository)
	}{
		{"CreateCommand", testCreateCommand},
		{"AgentSession", testAgentSession},
		{"FindCommandByID", testFindCommandByID},
		{"FindCommandByClientToken", testFindCommandByClientToken},
		{"FindCommands", testFindCommands},
		{"FindCommandsChangedSince", testFindCommandsChangedSince},
		{"FindCommandsForProjects", testFindCommandsForProjects},
		{"CountQueued", testCountQueued},
		{"QueueStats", testQueueStats},
		{"ClaimCommands", testClaimCommands},
		{"RenewLeases", testRenewLeases},
		{"ExpireLeases", testExpireLeases},
		{"RequestCancel", testRequestCancel},
		{"FinishCommand", testFinishCommand},
		{"Fencing", testFencing},
		{"AppendOutput", testAppendOutput},
		{"ReadOutput", testReadOutput},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newRepo)
		})
	}
}

func testCreateCommand(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := fullCommand("web", 0)
		want := c.Clone()
		mustCreateCommand(t, ctx, repo, c)
		if diff := cmp.Diff(want, c, cmpOpts...); diff != "" {
			t.Errorf("CreateCommand changed its argument (-before +after):\n%s", diff)
		}
		got := mustFindCommand(t, ctx, repo, c.ID)
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("stored command differs (-created +found):\n%s", diff)
		}
		assertCommandUTC(t, got)
	})

	t.Run("Minimal", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := newCommand("web", 0)
		c.KeyID = "" // the operator's
		c.Status = ""
		mustCreateCommand(t, ctx, repo, c)
		got := mustFindCommand(t, ctx, repo, c.ID)
		want := c.Clone()
		want.Status = domain.CommandQueued
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("stored command differs (-want +found):\n%s", diff)
		}
		if got.ExitCode != nil || got.StartedAt != nil || got.FinishedAt != nil || got.LeaseExpiresAt != nil {
			t.Errorf("unset fields came back set: %+v", got)
		}
	})

	t.Run("ClientTokens", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		// Commands without a token never conflict; a token is per key.
		for i, c := range []*domain.Command{
			withToken(newCommand("web", 0), "key1", ""),
			withToken(newCommand("web", 1), "key1", ""),
			withToken(newCommand("web", 2), "key1", "t1"),
			withToken(newCommand("web", 3), "key2", "t1"),
			withToken(newCommand("web", 4), "", "t1"),
		} {
			if err := repo.CreateCommand(ctx, c, nil); err != nil {
				t.Errorf("CreateCommand #%d (key %q, token %q): %v", i, c.KeyID, c.ClientToken, err)
			}
		}
	})

	t.Run("ErrConflictClientToken", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		for _, key := range []string{"key1", ""} {
			first := withToken(newCommand("web", 0), key, "tok")
			mustCreateCommand(t, ctx, repo, first)
			dup := withToken(fullCommand("other", 1), key, "tok")
			err := repo.CreateCommand(ctx, dup, nil)
			if code := domain.ErrorCode(err); code != domain.ECONFLICT {
				t.Fatalf("CreateCommand(key %q, same token) = %v (code %q), want code %q", key, err, code, domain.ECONFLICT)
			}
			if diff := cmp.Diff(first, mustFindCommand(t, ctx, repo, first.ID), cmpOpts...); diff != "" {
				t.Errorf("a failed create changed the existing command (-want +got):\n%s", diff)
			}
			if _, err := repo.FindCommandByID(ctx, dup.ID); domain.ErrorCode(err) != domain.ENOTFOUND {
				t.Errorf("the conflicting command was stored: %v", err)
			}
		}
	})

	t.Run("ErrConflictID", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := newCommand("web", 0)
		mustCreateCommand(t, ctx, repo, c)
		dup := fullCommand("other", 1)
		dup.ID = c.ID
		if err := repo.CreateCommand(ctx, dup, nil); domain.ErrorCode(err) != domain.ECONFLICT {
			t.Fatalf("CreateCommand(duplicate ID) = %v, want code %q", err, domain.ECONFLICT)
		}
	})

	t.Run("ErrInvalidStatus", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := newCommand("web", 0)
		c.Status = domain.CommandRunning
		if err := repo.CreateCommand(ctx, c, nil); domain.ErrorCode(err) != domain.EINVALID {
			t.Fatalf("CreateCommand(RUNNING) = %v, want code %q", err, domain.EINVALID)
		}
	})
}

func testFindCommandByID(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, newCommand("web", 0))
		_, err := repo.FindCommandByID(ctx, domain.NewID(time.Now()))
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("FindCommandByID(unknown) = %v (code %q), want code %q", err, code, domain.ENOTFOUND)
		}
	})
}

func testFindCommandByClientToken(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		a := withToken(fullCommand("web", 0), "key1", "tok")
		b := withToken(newCommand("web", 1), "key2", "tok")
		mustCreateCommand(t, ctx, repo, a)
		mustCreateCommand(t, ctx, repo, b)
		for _, want := range []*domain.Command{a, b} {
			got, err := repo.FindCommandByClientToken(ctx, want.KeyID, "tok")
			if err != nil {
				t.Fatalf("FindCommandByClientToken(%s, tok): %v", want.KeyID, err)
			}
			if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
				t.Errorf("FindCommandByClientToken(%s, tok) (-want +got):\n%s", want.KeyID, diff)
			}
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		mustCreateCommand(t, ctx, repo, withToken(newCommand("web", 0), "key1", "tok"))
		mustCreateCommand(t, ctx, repo, withToken(newCommand("web", 1), "key1", ""))
		for _, tt := range []struct{ key, token string }{{"key2", "tok"}, {"key1", "other"}, {"key1", ""}, {"", "tok"}} {
			_, err := repo.FindCommandByClientToken(ctx, tt.key, tt.token)
			if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
				t.Errorf("FindCommandByClientToken(%q, %q) = %v (code %q), want code %q", tt.key, tt.token, err, code, domain.ENOTFOUND)
			}
		}
	})
}

func testFindCommands(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		// Created in an order unrelated to their IDs.
		var all []*domain.Command
		for i := range 7 {
			c := fullCommand([]string{"web", "api"}[i%2], (i*3)%7)
			mustCreateCommand(t, ctx, repo, c)
			all = append(all, c)
		}
		got, err := repo.FindCommands(ctx, domain.CommandFilter{})
		if err != nil {
			t.Fatalf("FindCommands: %v", err)
		}
		if diff := cmp.Diff(newestFirst(all), got, cmpOpts...); diff != "" {
			t.Errorf("FindCommands() (-want +got):\n%s", diff)
		}
		for _, c := range got {
			assertCommandUTC(t, c)
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		got, err := repo.FindCommands(ctx, domain.CommandFilter{Limit: 10})
		if err != nil || len(got) != 0 {
			t.Fatalf("FindCommands(empty store) = %v, %v; want none, no error", got, err)
		}
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		var web, api []*domain.Command
		for i := range 10 {
			c := newCommand("web", 2*i)
			d := newCommand("api", 2*i+1)
			mustCreateCommand(t, ctx, repo, c)
			mustCreateCommand(t, ctx, repo, d)
			web, api = append(web, c), append(api, d)
		}
		// Cancel web's even ones.
		var cancelled, webQueued []*domain.Command
		for i := range web {
			if i%2 == 0 {
				web[i] = mustRequestCancel(t, ctx, repo, web[i].ID)
				cancelled = append(cancelled, web[i])
			} else {
				webQueued = append(webQueued, web[i])
			}
		}
		web, api = newestFirst(web), newestFirst(api)
		cancelled, webQueued = newestFirst(cancelled), newestFirst(webQueued)
		all := newestFirst(append(slices.Clone(web), api...))

		tests := []struct {
			name string
			f    domain.CommandFilter
			want []*domain.Command
		}{
			{"Project", domain.CommandFilter{ProjectID: "web"}, web},
			{"UnknownProject", domain.CommandFilter{ProjectID: "nope"}, nil},
			{"ProjectIDs", domain.CommandFilter{ProjectIDs: []string{"web", "nope"}}, web},
			{"ProjectIDsBoth", domain.CommandFilter{ProjectIDs: []string{"api", "web"}, Limit: 3}, all[:3]},
			{"ProjectIDsAndProject", domain.CommandFilter{ProjectIDs: []string{"web"}, ProjectID: "api"}, nil},
			{"Status", domain.CommandFilter{Status: domain.CommandCancelled}, cancelled},
			{"ProjectAndStatus", domain.CommandFilter{ProjectID: "web", Status: domain.CommandQueued}, webQueued},
			{"OtherProjectAndStatus", domain.CommandFilter{ProjectID: "api", Status: domain.CommandCancelled}, nil},
			{"Limit", domain.CommandFilter{Limit: 3}, all[:3]},
			{"LimitAboveCount", domain.CommandFilter{Limit: 100}, all},
			{"BeforeID", domain.CommandFilter{BeforeID: all[4].ID}, all[5:]},
			{"BeforeIDAndLimit", domain.CommandFilter{BeforeID: all[4].ID, Limit: 2}, all[5:7]},
			{"BeforeOldest", domain.CommandFilter{BeforeID: all[len(all)-1].ID}, nil},
			// BeforeID need not name a stored command: it is a position.
			{"BeforeUnknownID", domain.CommandFilter{BeforeID: all[4].ID[:10] + "zzzzzz"}, all[4:]},
			{"BeforeAfterAll", domain.CommandFilter{BeforeID: "w"}, all},
			{"ProjectBeforeIDLimit", domain.CommandFilter{ProjectID: "api", BeforeID: api[1].ID, Limit: 3}, api[2:5]},
			{"All", domain.CommandFilter{ProjectID: "web", Status: domain.CommandCancelled, BeforeID: cancelled[0].ID, Limit: 2}, cancelled[1:3]},
		}
		for _, tt := range tests {
			got, err := repo.FindCommands(ctx, tt.f)
			if err != nil {
				t.Errorf("%s: FindCommands(%+v): %v", tt.name, tt.f, err)
				continue
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts...); diff != "" {
				t.Errorf("%s: FindCommands(%+v) (-want +got):\n%s", tt.name, tt.f, diff)
			}
		}
	})
}

// testFindCommandsChangedSince checks FindCommands's ChangedSince: a command
// counts when it was queued, started or finished at or after the time.
func testFindCommandsChangedSince(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	repo, ctx := newRepo(t), t.Context()
	var cs []*domain.Command
	for i := range 6 {
		c := newCommand("web", i)
		mustCreateCommand(t, ctx, repo, c)
		cs = append(cs, c)
	}
	mustCreateCommand(t, ctx, repo, newCommand("api", 10))
	since := cs[4].CreatedAt // c4 and c5 were queued at or after it
	// c0, the oldest, starts and c1 is cancelled after it; c2 and c3 stay
	// as they were.
	if got, err := repo.ClaimCommands(ctx, claimRequest("d1", 1, 0)); err != nil || len(got) != 1 || got[0].ID != cs[0].ID {
		t.Fatalf("ClaimCommands = %v, %v; want %s", commandIDs(got), err, cs[0].ID)
	}
	if _, err := repo.RequestCancel(ctx, cs[1].ID, "cancelled in a test", since.Add(time.Second), nil); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		f    domain.CommandFilter
		want []*domain.Command
	}{
		{"Changed", domain.CommandFilter{ProjectID: "web", ChangedSince: since}, []*domain.Command{cs[5], cs[4], cs[1], cs[0]}},
		{"Paged", domain.CommandFilter{ProjectID: "web", ChangedSince: since, Limit: 3}, []*domain.Command{cs[5], cs[4], cs[1]}},
		{"NextPage", domain.CommandFilter{ProjectID: "web", ChangedSince: since, BeforeID: cs[1].ID, Limit: 3}, []*domain.Command{cs[0]}},
		{"AtTheBound", domain.CommandFilter{ProjectID: "web", ChangedSince: cs[5].CreatedAt}, []*domain.Command{cs[5], cs[1], cs[0]}},
		{"AfterEveryChange", domain.CommandFilter{ChangedSince: time.Now().Add(time.Hour)}, nil},
	} {
		got, err := repo.FindCommands(ctx, tt.f)
		if err != nil {
			t.Errorf("%s: FindCommands: %v", tt.name, err)
			continue
		}
		if g, w := commandIDs(got), commandIDs(tt.want); !slices.Equal(g, w) {
			t.Errorf("%s: FindCommands(%+v) = %v, want %v", tt.name, tt.f, g, w)
		}
	}
}

func testFindCommandsForProjects(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		byProject := map[string][]*domain.Command{}
		for i := range 15 {
			p := []string{"web", "api", "db"}[i%3]
			c := newCommand(p, (i*7)%15)
			mustCreateCommand(t, ctx, repo, c)
			byProject[p] = append(byProject[p], c)
		}
		// db's newest is cancelled; others stay queued.
		db := newestFirst(byProject["db"])
		db[0] = mustRequestCancel(t, ctx, repo, db[0].ID)
		web, api := newestFirst(byProject["web"]), newestFirst(byProject["api"])

		tests := []struct {
			name     string
			projects []string
			status   domain.CommandStatus
			limit    int
			want     map[string][]*domain.Command
		}{
			{"Limit", []string{"web", "api", "nope"}, "", 2, map[string][]*domain.Command{"web": web[:2], "api": api[:2]}},
			{"NoLimit", []string{"db", "web"}, "", 0, map[string][]*domain.Command{"db": db, "web": web}},
			{"Status", []string{"db", "web"}, domain.CommandQueued, 3, map[string][]*domain.Command{"db": db[1:4], "web": web[:3]}},
			{"StatusNoMatch", []string{"api"}, domain.CommandCancelled, 3, map[string][]*domain.Command{}},
			{"Duplicates", []string{"api", "api"}, "", 1, map[string][]*domain.Command{"api": api[:1]}},
			{"None", nil, "", 5, map[string][]*domain.Command{}},
		}
		for _, tt := range tests {
			got, err := repo.FindCommandsForProjects(ctx, tt.projects, tt.status, tt.limit)
			if err != nil {
				t.Errorf("%s: FindCommandsForProjects: %v", tt.name, err)
				continue
			}
			if diff := cmp.Diff(tt.want, got, cmpOpts...); diff != "" {
				t.Errorf("%s: FindCommandsForProjects(%q, %q, %d) (-want +got):\n%s", tt.name, tt.projects, tt.status, tt.limit, diff)
			}
		}
	})

	t.Run("ManyProjects", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		// More projects than one query of a store may take.
		var projects []string
		want := map[string][]*domain.Command{}
		for i := range 260 {
			p := "p" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26))
			projects = append(projects, p)
			if i%5 == 0 {
				c := newCommand(p, i)
				mustCreateCommand(t, ctx, repo, c)
				want[p] = []*domain.Command{c}
			}
		}
		got, err := repo.FindCommandsForProjects(ctx, projects, "", 3)
		if err != nil {
			t.Fatalf("FindCommandsForProjects: %v", err)
		}
		if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
			t.Errorf("FindCommandsForProjects(260 projects) (-want +got):\n%s", diff)
		}
	})
}

func testCountQueued(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		var key1 []*domain.Command
		for i := range 5 {
			c := newCommand("web", i)
			c.KeyID = "key1"
			mustCreateCommand(t, ctx, repo, c)
			key1 = append(key1, c)
		}
		other := newCommand("web", 9)
		other.KeyID = "key2"
		mustCreateCommand(t, ctx, repo, other)
		assertCountQueued(t, repo, "key1", 5)
		assertCountQueued(t, repo, "key2", 1)
		assertCountQueued(t, repo, "nobody", 0)

		// Claimed and cancelled commands are no longer queued.
		mustRequestCancel(t, ctx, repo, key1[4].ID)
		mustClaim(t, ctx, repo, claimRequest("d1", 2, 0))
		assertCountQueued(t, repo, "key1", 2)
	})
}

func testQueueStats(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		assertQueueStats(t, repo, domain.QueueStats{Queued: zeroQueued()})

		prios := []domain.Priority{domain.PriorityUrgent, domain.PriorityHigh, domain.PriorityHigh, domain.PriorityLow, domain.PriorityLow, domain.PriorityLow}
		for i, p := range prios {
			c := newCommand("web", i)
			c.Priority = p
			mustCreateCommand(t, ctx, repo, c)
		}
		want := zeroQueued()
		want[domain.PriorityUrgent], want[domain.PriorityHigh], want[domain.PriorityLow] = 1, 2, 3
		assertQueueStats(t, repo, domain.QueueStats{Queued: want})

		// Claim the urgent and one high; finish one of them; cancel a low.
		claimed := mustClaim(t, ctx, repo, claimRequest("d1", 2, 0))
		mustFinish(t, ctx, repo, claimed[0], succeeded())
		lows, err := repo.FindCommands(ctx, domain.CommandFilter{Status: domain.CommandQueued})
		if err != nil {
			t.Fatal(err)
		}
		mustRequestCancel(t, ctx, repo, lows[0].ID)
		want[domain.PriorityUrgent], want[domain.PriorityHigh], want[domain.PriorityLow] = 0, 1, 2
		assertQueueStats(t, repo, domain.QueueStats{Queued: want, Running: 1})
	})
}

// commandBase is when the commands of newCommand are made.
var commandBase = time.Now().Add(-time.Hour)

// commandID returns the ID of the i-th test command, made i milliseconds
// after commandBase: IDs sort by i, whatever order they are made in.
func commandID(i int) string {
	return idAt(commandBase.Add(time.Duration(i) * time.Millisecond))
}

// newCommand returns a queued command of project with only the required
// fields set. Commands made with a higher i have higher IDs.
func newCommand(project string, i int) *domain.Command {
	made := commandBase.Add(time.Duration(i) * time.Millisecond)
	return &domain.Command{
		ID:        commandID(i),
		ProjectID: project,
		KeyID:     "key1",
		Type:      domain.CommandExec,
		Argv:      []string{"true"},
		Priority:  domain.PriorityNormal,
		Status:    domain.CommandQueued,
		CreatedAt: at(made),
	}
}

// fullCommand is newCommand with every field a new command may have set.
func fullCommand(project string, i int) *domain.Command {
	c := newCommand(project, i)
	c.Type = domain.CommandShell
	c.Argv = []string{"/bin/sh", "-c", "echo 'ünïcode' \"$HOME\" \\ ? $1 && exit 3", "--", "a b"}
	c.Env = map[string]string{"HOME": "/home/dev", "EMPTY": "", "QUOTES": `it's "x"`}
	c.Workdir = "src/app"
	c.Priority = domain.PriorityHigh
	c.Timeout = 90 * time.Second
	c.ClientToken = "token-" + c.ID
	// Stores keep it whatever the argv: they do not read it.
	c.AgentProtocol = domain.ClaudeCodeProtocol
	c.AgentSession = "session-" + c.ID
	return c
}

func withToken(c *domain.Command, key, token string) *domain.Command {
	c.KeyID, c.ClientToken = key, token
	return c
}

// newestFirst returns cs sorted by ID, highest first.
func newestFirst(cs []*domain.Command) []*domain.Command {
	out := slices.Clone(cs)
	slices.SortFunc(out, func(a, b *domain.Command) int { return strings.Compare(b.ID, a.ID) })
	return out
}

func zeroQueued() map[domain.Priority]int {
	m := map[domain.Priority]int{}
	for _, p := range domain.Priorities {
		m[p] = 0
	}
	return m
}

func mustCreateCommand(tb testing.TB, ctx context.Context, repo domain.CommandRepository, c *domain.Command) {
	tb.Helper()
	if err := repo.CreateCommand(ctx, c, nil); err != nil {
		tb.Fatalf("CreateCommand(%s): %v", c.ID, err)
	}
}

func mustFindCommand(tb testing.TB, ctx context.Context, repo domain.CommandRepository, id string) *domain.Command {
	tb.Helper()
	c, err := repo.FindCommandByID(ctx, id)
	if err != nil {
		tb.Fatalf("FindCommandByID(%s): %v", id, err)
	}
	return c
}

func assertCountQueued(tb testing.TB, repo domain.CommandRepository, key string, want int) {
	tb.Helper()
	n, err := repo.CountQueued(tb.Context(), key)
	if err != nil {
		tb.Fatalf("CountQueued(%q): %v", key, err)
	}
	if n != want {
		tb.Errorf("CountQueued(%q) = %d, want %d", key, n, want)
	}
}

func assertQueueStats(tb testing.TB, repo domain.CommandRepository, want domain.QueueStats) {
	tb.Helper()
	got, err := repo.QueueStats(tb.Context())
	if err != nil {
		tb.Fatalf("QueueStats: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		tb.Errorf("QueueStats (-want +got):\n%s", diff)
	}
}

func assertCommandUTC(tb testing.TB, c *domain.Command) {
	tb.Helper()
	assertUTC(tb, "command "+c.ID, &c.CreatedAt, c.StartedAt, c.FinishedAt, c.LeaseExpiresAt)
}
