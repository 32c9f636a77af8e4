package hub_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/hub"
)

// failsafe bounds waits that only a bug makes long; nothing asserts speed.
const failsafe = 30 * time.Second

func event(i int) domain.Event {
	return domain.Event{Kind: domain.EventOutput, CommandID: "c1", UpTo: int64(i)}
}

// receive reads n events and fails unless they are UpTo 1…n in order.
func receive(t *testing.T, sub domain.HubSubscription, n int) {
	t.Helper()
	if err := read(sub, n); err != nil {
		t.Fatal(err)
	}
}

// read reads n events and returns an error unless they are UpTo 1…n in
// order. Unlike receive, it may run outside the test's goroutine.
func read(sub domain.HubSubscription, n int) error {
	timeout := time.After(failsafe)
	for i := 1; i <= n; i++ {
		select {
		case e, ok := <-sub.Events():
			if !ok {
				return fmt.Errorf("channel closed after %d of %d events (lagged %v)", i-1, n, sub.Lagged())
			}
			if e.UpTo != int64(i) {
				return fmt.Errorf("event %d has UpTo %d", i, e.UpTo)
			}
		case <-timeout:
			return fmt.Errorf("got %d of %d events", i-1, n)
		}
	}
	return nil
}

// assertClosed fails unless the subscription's channel is closed and
// drained.
func assertClosed(t *testing.T, sub domain.HubSubscription) {
	t.Helper()
	select {
	case e, ok := <-sub.Events():
		if ok {
			t.Fatalf("got event %+v, want a closed channel", e)
		}
	case <-time.After(failsafe):
		t.Fatal("channel not closed")
	}
}

// assertDone fails unless the subscription's Done channel is closed.
func assertDone(t *testing.T, sub domain.HubSubscription) {
	t.Helper()
	select {
	case <-sub.Done():
	case <-time.After(failsafe):
		t.Fatal("Done not closed")
	}
}

func TestHub_Subscribe(t *testing.T) {
	t.Run("DefaultBuffer", func(t *testing.T) {
		h := hub.New()
		for _, n := range []int{0, -1} {
			sub := h.Subscribe("t", n)
			if got := cap(sub.Events()); got != hub.DefaultBuffer {
				t.Errorf("Subscribe(t, %d): buffer %d, want %d", n, got, hub.DefaultBuffer)
			}
			sub.Close()
		}
		if sub := h.Subscribe("t", 5); cap(sub.Events()) != 5 {
			t.Errorf("buffer %d, want 5", cap(sub.Events()))
		}
	})

	t.Run("OnlyLaterEvents", func(t *testing.T) {
		h := hub.New()
		h.Publish("t", event(0))
		sub := h.Subscribe("t", 4)
		defer sub.Close()
		h.Publish("t", event(1))
		receive(t, sub, 1)
		select {
		case e := <-sub.Events():
			t.Errorf("unexpected event %+v", e)
		default:
		}
	})

	t.Run("TopicsApart", func(t *testing.T) {
		h := hub.New()
		a, b := h.Subscribe(domain.CommandTopic("a"), 4), h.Subscribe(domain.CommandTopic("b"), 4)
		defer a.Close()
		defer b.Close()
		h.Publish(domain.CommandTopic("a"), event(1))
		receive(t, a, 1)
		if n := len(b.Events()); n != 0 {
			t.Errorf("topic b got %d events of topic a", n)
		}
		if got := h.Topics(); got != 2 {
			t.Errorf("Topics() = %d, want 2", got)
		}
	})
}

func TestHub_Publish(t *testing.T) {
	t.Run("Order", func(t *testing.T) {
		h := hub.New()
		const n = 1000
		sub := h.Subscribe("t", 16)
		defer sub.Close()
		go func() {
			// The publisher waits for room, so that this test is about
			// order and not about lagging.
			for i := 1; i <= n; i++ {
				for len(sub.Events()) == cap(sub.Events()) {
					runtime.Gosched()
				}
				h.Publish("t", event(i))
			}
		}()
		receive(t, sub, n)
		if sub.Lagged() {
			t.Error("Lagged() = true")
		}
	})

	t.Run("FanOut", func(t *testing.T) {
		h := hub.New()
		const subs, n = 200, 100
		all := make([]domain.HubSubscription, subs)
		for i := range all {
			all[i] = h.Subscribe("t", n)
		}
		if got := h.Subscribers("t"); got != subs {
			t.Fatalf("Subscribers() = %d, want %d", got, subs)
		}
		for i := 1; i <= n; i++ {
			h.Publish("t", event(i))
		}
		for _, sub := range all {
			receive(t, sub, n)
			sub.Close()
		}
		if got := h.Topics(); got != 0 {
			t.Errorf("Topics() = %d after every Close, want 0", got)
		}
	})

	// All subscribers of a topic see concurrent publishes in one order.
	t.Run("SameOrderForAll", func(t *testing.T) {
		h := hub.New()
		const publishers, each = 4, 250
		a, b := h.Subscribe("t", publishers*each), h.Subscribe("t", publishers*each)
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for i := range each {
					h.Publish("t", event(p*each+i+1))
				}
			})
		}
		wg.Wait()
		for range publishers * each {
			if ea, eb := <-a.Events(), <-b.Events(); ea.UpTo != eb.UpTo {
				t.Fatalf("subscriber a got %d where b got %d", ea.UpTo, eb.UpTo)
			}
		}
	})

	// A subscriber that does not read is dropped once its buffer is full;
	// the others get every event, and Publish never waits for it.
	t.Run("SlowSubscriberDropped", func(t *testing.T) {
		h := hub.New()
		const n, buffer = 10000, 8
		stuck := h.Subscribe("t", buffer)
		defer stuck.Close()
		fast := make([]domain.HubSubscription, 3)
		for i := range fast {
			fast[i] = h.Subscribe("t", 64)
			defer fast[i].Close()
		}
		var wg sync.WaitGroup
		for _, sub := range fast {
			wg.Go(func() {
				if err := read(sub, n); err != nil {
					t.Error(err)
				}
			})
		}

		published := make(chan struct{})
		go func() {
			defer close(published)
			for i := 1; i <= n; i++ {
				// Like a real publisher, wait for the fast readers
				// (never for the stuck one): this test is about
				// the stuck one not slowing anyone down.
				for _, sub := range fast {
					for len(sub.Events()) == cap(sub.Events()) {
						runtime.Gosched()
					}
				}
				h.Publish("t", event(i))
			}
		}()
		select {
		case <-published:
		case <-time.After(failsafe):
			t.Fatal("Publish blocked on a subscriber that does not read")
		}
		wg.Wait()

		if !stuck.Lagged() {
			t.Error("stuck subscriber: Lagged() = false")
		}
		for _, sub := range fast {
			if sub.Lagged() {
				t.Error("fast subscriber: Lagged() = true")
			}
		}
		// What the stuck subscriber had not taken was discarded with it.
		assertClosed(t, stuck)
		if got := h.Subscribers("t"); got != len(fast) {
			t.Errorf("Subscribers() = %d, want %d", got, len(fast))
		}
	})

	// With nothing reading at all, Publish of 10,000 events still returns.
	t.Run("NeverBlocks", func(t *testing.T) {
		h := hub.New()
		subs := make([]domain.HubSubscription, 10)
		for i := range subs {
			subs[i] = h.Subscribe("t", 1)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 1; i <= 10000; i++ {
				h.Publish("t", event(i))
			}
		}()
		select {
		case <-done:
		case <-time.After(failsafe):
			t.Fatal("Publish blocked")
		}
		for _, sub := range subs {
			if !sub.Lagged() {
				t.Error("Lagged() = false")
			}
			sub.Close() // after the hub closed it: a no-op
		}
		if h.Topics() != 0 {
			t.Errorf("Topics() = %d, want 0", h.Topics())
		}
	})
}

func TestHub_Close(t *testing.T) {
	t.Run("Idempotent", func(t *testing.T) {
		h := hub.New()
		sub := h.Subscribe("t", 1)
		other := h.Subscribe("t", 1)
		defer other.Close()
		sub.Close()
		sub.Close()
		assertClosed(t, sub)
		assertDone(t, sub)
		if sub.Lagged() {
			t.Error("Lagged() = true after Close")
		}
		if got := h.Subscribers("t"); got != 1 {
			t.Errorf("Subscribers() = %d, want 1", got)
		}
		h.Publish("t", event(1)) // must not send on the closed channel
		receive(t, other, 1)
	})

	// Subscriptions come and go while publishers hammer their topics: no
	// panic (send on a closed channel), no race, no leftover topic, no
	// leaked goroutine.
	t.Run("DuringPublishStorm", func(t *testing.T) {
		before := runtime.NumGoroutine()
		h := hub.New()
		topics := []string{"a", "b", "c"}
		stop := make(chan struct{})
		var publishers sync.WaitGroup
		for i := range 4 {
			publishers.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
						h.Publish(topics[(i+n)%len(topics)], event(n))
						runtime.Gosched() // leave the subscribers some CPU
					}
				}
			})
		}
		var subscribers sync.WaitGroup
		for i := range 8 {
			subscribers.Go(func() {
				for n := range 1000 {
					sub := h.Subscribe(topics[(i+n)%len(topics)], 1+n%4)
					// Read a little, sometimes nothing, then close; a
					// few are closed twice, concurrently.
					for range n % 3 {
						<-sub.Events()
					}
					if n%10 == 0 {
						var wg sync.WaitGroup
						wg.Go(sub.Close)
						wg.Go(sub.Close)
						wg.Wait()
					} else {
						sub.Close()
					}
					for range sub.Events() {
						// Drain: the channel must end.
					}
				}
			})
		}
		subscribers.Wait()
		close(stop)
		publishers.Wait()

		if got := h.Topics(); got != 0 {
			t.Errorf("Topics() = %d after every Close, want 0", got)
		}
		for _, name := range topics {
			if got := h.Subscribers(name); got != 0 {
				t.Errorf("Subscribers(%q) = %d, want 0", name, got)
			}
		}
		assertNoGoroutineLeak(t, before)
	})
}

// assertNoGoroutineLeak waits for the goroutine count to come back to before.
func assertNoGoroutineLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(failsafe)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ExampleHub() {
	h := hub.New()
	sub := h.Subscribe(domain.CommandTopic("c1"), 0)
	defer sub.Close()

	h.Publish(domain.CommandTopic("c1"), domain.Event{Kind: domain.EventOutput, CommandID: "c1", UpTo: 3})
	e := <-sub.Events()
	fmt.Println(e.CommandID, e.UpTo, sub.Lagged())
	// Output: c1 3 false
}

// TestHub_RetainsHold: Publish retains an event's Hold once for each
// subscriber it hands the event to, and not for one it drops for lagging.
// The count is checked by releasing: one release too many panics.
func TestHub_RetainsHold(t *testing.T) {
	h := hub.New()
	ready := h.Subscribe("t", 1)
	defer ready.Close()
	full := h.Subscribe("t", 1)
	defer full.Close()
	h.Publish("t", event(1)) // fills both buffers
	<-ready.Events()

	hold := &domain.Hold{}
	hold.Retain() // the publisher's reference
	e := event(2)
	e.Hold = hold
	h.Publish("t", e) // ready takes it; full is dropped
	hold.Release()
	if !full.Lagged() {
		t.Fatal("the subscriber with a full buffer was not dropped")
	}
	got := <-ready.Events()
	if got.Hold != hold {
		t.Fatal("the event was handed out without its Hold")
	}
	got.Hold.Release() // the subscriber's reference: the last one
	defer func() {
		if recover() == nil {
			t.Error("the Hold had a reference left: it was retained for the dropped subscriber too")
		}
	}()
	hold.Release()
}

// outputEvent is event i carrying one chunk of size bytes, held by hold.
func outputEvent(i, size int, hold *domain.Hold) domain.Event {
	e := event(i)
	e.Chunks = []domain.OutputChunk{{CommandID: "c1", Seq: int64(i), Stream: domain.Stdout, Data: strings.Repeat("x", size)}}
	e.Hold = hold
	return e
}

// assertOnlyReference fails unless hold has exactly one reference left,
// the caller's, and releases it. The count is checked by releasing: a
// release past the last one panics.
func assertOnlyReference(t *testing.T, hold *domain.Hold, why string) {
	t.Helper()
	hold.Release()
	defer func() {
		if recover() == nil {
			t.Errorf("the Hold has references left: %s", why)
		}
	}()
	hold.Release()
}

func TestHub_Budget(t *testing.T) {
	// A subscriber that never reads is dropped once the output it has not
	// taken would pass the budget, however many more events its buffer
	// has room for, and the hub lets go of what it buffered for it.
	t.Run("StalledSubscriberDropped", func(t *testing.T) {
		const budget, size = 1000, 100
		h := hub.NewWithBudget(budget)
		stalled := h.Subscribe("t", 64)
		defer stalled.Close()
		hold := &domain.Hold{}
		hold.Retain() // the publisher's reference
		for i := 1; i <= budget/size; i++ {
			h.Publish("t", outputEvent(i, size, hold))
		}
		if stalled.Lagged() {
			t.Fatalf("dropped with %d bytes to buffer, the budget", budget)
		}
		select {
		case <-stalled.Done():
			t.Fatal("Done closed before the subscriber was dropped")
		default:
		}
		h.Publish("t", outputEvent(budget/size+1, size, hold))
		if !stalled.Lagged() {
			t.Fatalf("not dropped with %d bytes to buffer, past the budget of %d", budget+size, budget)
		}
		assertOnlyReference(t, hold, "the hub kept events of the subscriber it dropped")
		assertClosed(t, stalled)
		assertDone(t, stalled)
	})

	// A subscriber that takes each event as it comes is never dropped,
	// even for events larger than the budget: only what it has not taken
	// counts, and one event goes to a subscriber that has none waiting,
	// whatever its size.
	t.Run("ReaderKeepsUp", func(t *testing.T) {
		h := hub.NewWithBudget(1000)
		sub := h.Subscribe("t", 4)
		defer sub.Close()
		for i := 1; i <= 100; i++ {
			h.Publish("t", outputEvent(i, 5000, nil))
			if e := <-sub.Events(); e.UpTo != int64(i) {
				t.Fatalf("got event %d, want %d (lagged %v)", e.UpTo, i, sub.Lagged())
			}
		}
		if sub.Lagged() {
			t.Error("Lagged() = true")
		}
	})

	// Events without output take room in the buffer, but none of the
	// budget.
	t.Run("OutputOnly", func(t *testing.T) {
		h := hub.NewWithBudget(1)
		sub := h.Subscribe("t", 64)
		defer sub.Close()
		for i := 1; i <= 60; i++ {
			h.Publish("t", event(i))
		}
		h.Publish("t", outputEvent(61, 10, nil))
		if sub.Lagged() {
			t.Fatal("dropped for the first output it buffers")
		}
		receive(t, sub, 61)
		h.Publish("t", outputEvent(62, 10, nil))
		h.Publish("t", outputEvent(63, 10, nil))
		if !sub.Lagged() {
			t.Error("not dropped with 20 bytes to buffer, past the budget of 1")
		}
	})

	// A subscriber dropped for want of room lets go of the events it had
	// not taken as well.
	t.Run("DropReleases", func(t *testing.T) {
		h := hub.New()
		sub := h.Subscribe("t", 4)
		defer sub.Close()
		hold := &domain.Hold{}
		hold.Retain()
		for i := 1; i <= 5; i++ {
			h.Publish("t", outputEvent(i, 10, hold))
		}
		if !sub.Lagged() {
			t.Fatal("not dropped with its buffer full")
		}
		assertOnlyReference(t, hold, "the hub kept events of the subscriber it dropped")
		assertClosed(t, sub)
	})

	// A subscriber that closes its subscription lets go of the events it
	// had not taken too.
	t.Run("CloseReleases", func(t *testing.T) {
		h := hub.New()
		sub := h.Subscribe("t", 8)
		hold := &domain.Hold{}
		hold.Retain()
		for i := 1; i <= 5; i++ {
			h.Publish("t", outputEvent(i, 10, hold))
		}
		sub.Close()
		assertOnlyReference(t, hold, "Close kept the events the subscriber had not taken")
	})

	t.Run("DefaultBudget", func(t *testing.T) {
		h := hub.NewWithBudget(0)
		sub := h.Subscribe("t", 64)
		defer sub.Close()
		const size = hub.DefaultBudget / 4
		for i := 1; i <= 4; i++ {
			h.Publish("t", outputEvent(i, size, nil))
		}
		if sub.Lagged() {
			t.Fatal("dropped at the default budget")
		}
		h.Publish("t", outputEvent(5, 1, nil))
		if !sub.Lagged() {
			t.Error("not dropped past the default budget")
		}
	})
}
