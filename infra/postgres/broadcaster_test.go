package postgres_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/infra/postgres"
	"github.com/rdev-hq/rdev/internal/testenv"
)

// How long a test waits for a notification that should come.
const deliveryTimeout = 10 * time.Second

func TestBroadcaster(t *testing.T) {
	t.Run("OtherProcessesOnly", func(t *testing.T) {
		t.Parallel()
		stores := mustOpenShared(t, 2)
		a, b := postgres.NewBroadcaster(stores[0]), postgres.NewBroadcaster(stores[1])
		if a.Origin() == b.Origin() {
			t.Fatalf("two broadcasters share origin %q", a.Origin())
		}
		ra, rb := mustListen(t, a), mustListen(t, b)
		waitListening(t, b, ra)
		waitListening(t, a, rb)

		ctx := t.Context()
		id := domain.NewID(time.Now())
		sent := []struct {
			topic string
			e     domain.Event
		}{
			{domain.CommandTopic(id), domain.Event{
				Kind: domain.EventOutput, CommandID: id, UpTo: 42,
				Chunks: []domain.OutputChunk{{CommandID: id, Seq: 42, Stream: domain.Stdout, Data: strings.Repeat("x", 10000)}},
			}},
			{domain.ProjectTopic("web"), domain.Event{Kind: domain.EventStatus, Command: &domain.Command{ID: id, Status: domain.CommandRunning}}},
			{domain.QueueTopic, domain.Event{Kind: domain.EventCancel, CommandID: id, Command: &domain.Command{ID: id}}},
			{domain.QueueTopic, domain.Event{Kind: domain.EventQueued}},
		}
		for _, s := range sent {
			if err := a.Broadcast(ctx, s.topic, s.e); err != nil {
				t.Fatalf("Broadcast(%s, %+v): %v", s.topic, s.e, err)
			}
		}
		// Only names travel: no output, no command.
		want := []received{
			{domain.CommandTopic(id), domain.Event{Kind: domain.EventOutput, CommandID: id, UpTo: 42}},
			{domain.ProjectTopic("web"), domain.Event{Kind: domain.EventStatus, CommandID: id}},
			{domain.QueueTopic, domain.Event{Kind: domain.EventCancel, CommandID: id}},
			{domain.QueueTopic, domain.Event{Kind: domain.EventQueued}},
		}
		if diff := cmp.Diff(want, rb.next(t, len(want))); diff != "" {
			t.Errorf("B received (-want +got):\n%s", diff)
		}

		// A hears B, and heard nothing of its own before: notifications
		// arrive in commit order, so A's own came first.
		marker := received{"marker", domain.Event{Kind: domain.EventQueued}}
		if err := b.Broadcast(ctx, marker.Topic, marker.Event); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]received{marker}, ra.next(t, 1)); diff != "" {
			t.Errorf("A received (-want +got):\n%s", diff)
		}
	})

	t.Run("OtherSchemaNotHeard", func(t *testing.T) {
		t.Parallel()
		here, there := mustOpenShared(t, 1)[0], mustOpenShared(t, 2)
		a := postgres.NewBroadcaster(here)
		c, d := postgres.NewBroadcaster(there[0]), postgres.NewBroadcaster(there[1])
		rc := mustListen(t, c)
		waitListening(t, d, rc)
		if err := a.Broadcast(t.Context(), "elsewhere", domain.Event{Kind: domain.EventQueued}); err != nil {
			t.Fatal(err)
		}
		marker := received{"marker", domain.Event{Kind: domain.EventQueued}}
		if err := d.Broadcast(t.Context(), marker.Topic, marker.Event); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]received{marker}, rc.next(t, 1)); diff != "" {
			t.Errorf("a listener in another schema received (-want +got):\n%s", diff)
		}
	})

	t.Run("Reconnects", func(t *testing.T) {
		t.Parallel()
		dsn, schema := testenv.PostgresSchema(t)
		listener := mustOpenDSN(t, withParams(t, dsn, "application_name", schema))
		sender := postgres.NewBroadcaster(mustOpenDSN(t, dsn))
		r := mustListen(t, postgres.NewBroadcaster(listener))
		waitListening(t, sender, r)
		before := listenerPID(t, listener, schema)

		// Kill the listening connection, as a failover or an idle-session
		// killer would.
		var killed int
		err := listener.DB().NewRaw(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE query LIKE 'LISTEN%' AND application_name = ?`, schema).Scan(t.Context(), &killed)
		if err != nil || killed != 1 {
			t.Fatalf("terminated %d listening backends (%v), want 1", killed, err)
		}
		// Notifications sent while it reconnects are lost; once it has, new
		// ones arrive.
		waitListening(t, sender, r)
		e := received{"after", domain.Event{Kind: domain.EventOutput, CommandID: "c1", UpTo: 7}}
		if err := sender.Broadcast(t.Context(), e.Topic, e.Event); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]received{e}, r.next(t, 1)); diff != "" {
			t.Errorf("received after reconnecting (-want +got):\n%s", diff)
		}
		if after := listenerPID(t, listener, schema); after == before {
			t.Errorf("the listener still uses backend %d, which was terminated", before)
		}
	})

	t.Run("IdleBeyondReadTimeout", func(t *testing.T) {
		t.Parallel()
		// A read timeout far below the idle time: a listener subject to it
		// would drop its connection and reconnect while idle.
		dsn, schema := testenv.PostgresSchema(t)
		listener := mustOpenDSN(t, withParams(t, withParams(t, dsn, "application_name", schema), "read_timeout", "200ms"))
		sender := postgres.NewBroadcaster(mustOpenDSN(t, dsn))
		r := mustListen(t, postgres.NewBroadcaster(listener))
		waitListening(t, sender, r)
		before := listenerPID(t, listener, schema)
		time.Sleep(1500 * time.Millisecond)
		e := received{"after idle", domain.Event{Kind: domain.EventQueued}}
		if err := sender.Broadcast(t.Context(), e.Topic, e.Event); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]received{e}, r.next(t, 1)); diff != "" {
			t.Errorf("received after idling (-want +got):\n%s", diff)
		}
		if after := listenerPID(t, listener, schema); after != before {
			t.Errorf("the listener reconnected while idle (backend %d, then %d)", before, after)
		}
	})

	t.Run("ListenStopsWithContext", func(t *testing.T) {
		t.Parallel()
		b := postgres.NewBroadcaster(mustOpenShared(t, 1)[0])
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- b.Listen(ctx, func(string, domain.Event) {}) }()
		time.Sleep(100 * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Listen after its context ended = %v, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Listen did not return after its context ended")
		}
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		t.Parallel()
		b := postgres.NewBroadcaster(mustOpenShared(t, 1)[0])
		for name, tt := range map[string]struct {
			topic string
			e     domain.Event
		}{
			"UnknownKind":   {"queue", domain.Event{Kind: domain.EventKind(99)}},
			"LongTopic":     {strings.Repeat("t", 8000), domain.Event{Kind: domain.EventQueued}},
			"LongEscapes":   {strings.Repeat("\x01", 1400), domain.Event{Kind: domain.EventQueued}},
			"LongCommandID": {"queue", domain.Event{Kind: domain.EventCancel, CommandID: strings.Repeat("i", 7990)}},
		} {
			if err := b.Broadcast(t.Context(), tt.topic, tt.e); domain.ErrorCode(err) != domain.EINVALID {
				t.Errorf("%s: Broadcast = %v, want code %q", name, err, domain.EINVALID)
			}
		}
	})
}

// received is what a Listen handler was called with.
type received struct {
	Topic string
	Event domain.Event
}

// recorder collects what a Listen handler receives; probes (topic "probe")
// go to a channel of their own.
type recorder struct {
	events chan received
	probes chan struct{}
}

// mustListen runs b.Listen until the test ends, recording what it receives.
func mustListen(t *testing.T, b *postgres.Broadcaster) *recorder {
	t.Helper()
	r := &recorder{events: make(chan received, 100), probes: make(chan struct{}, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Listen(ctx, func(topic string, e domain.Event) {
			if topic == "probe" {
				r.probes <- struct{}{}
				return
			}
			r.events <- received{topic, e}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
	return r
}

// next waits for n events and returns them.
func (r *recorder) next(t *testing.T, n int) []received {
	t.Helper()
	var out []received
	timeout := time.After(deliveryTimeout)
	for len(out) < n {
		select {
		case e := <-r.events:
			out = append(out, e)
		case <-timeout:
			t.Fatalf("received %d of %d events: %+v", len(out), n, out)
		}
	}
	return out
}

// waitListening broadcasts probes from b until r receives one, then drops
// any further probes: from then on, r hears b.
func waitListening(t *testing.T, b *postgres.Broadcaster, r *recorder) {
	t.Helper()
	deadline := time.Now().Add(deliveryTimeout)
	for {
		if err := b.Broadcast(t.Context(), "probe", domain.Event{Kind: domain.EventQueued}); err != nil {
			t.Fatalf("Broadcast(probe): %v", err)
		}
		select {
		case <-r.probes:
			for {
				select {
				case <-r.probes:
				case <-time.After(50 * time.Millisecond):
					return
				}
			}
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener did not start hearing probes")
		}
	}
}

// listenerPID returns the backend of the one listening connection whose
// application_name is app.
func listenerPID(t *testing.T, s *bunstore.Store, app string) int {
	t.Helper()
	var pids []int
	err := s.DB().NewRaw(`SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND application_name = ?`, app).Scan(t.Context(), &pids)
	if err != nil || len(pids) != 1 {
		t.Fatalf("listening backends of %s: %v, %v; want one", app, pids, err)
	}
	return pids[0]
}

func mustOpenDSN(t *testing.T, dsn string) *bunstore.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func withParams(t *testing.T, dsn, name, value string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(name, value)
	u.RawQuery = q.Encode()
	return u.String()
}
