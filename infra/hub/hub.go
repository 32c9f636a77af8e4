// Package hub is rdev's in-process stream hub: it fans command events out to
// the subscribers of a topic without ever letting a slow one hold up the
// publisher or the others.
package hub

import (
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/rdev-hq/rdev/domain"
)

// DefaultBuffer is the channel buffer of a subscription asked for with a
// buffer of 0 or less: as many events as fit in 4 KiB (63 today). Not a
// round 64: Go puts an 8-byte header in front of a buffer of pointerful
// values this large, and 64 events plus that header would take the next
// allocation size class, 4864 bytes, wasting 768 bytes per subscription.
const DefaultBuffer = (4096 - 8) / int(unsafe.Sizeof(domain.Event{}))

// DefaultBudget is the most output, in bytes of the Data of events' Chunks,
// that a hub made by New buffers for one subscriber.
const DefaultBudget = 1 << 20

// Hub is a domain.Hub in memory. Publish never blocks on a subscriber: one
// whose buffer is full is marked lagged and dropped, and its channel closed,
// so it reads the rest from storage (see domain.HubSubscription). A buffer
// is full when it holds as many events as it has room for, or when one more
// event would take the output it holds past the hub's budget of bytes: an
// event's Hold keeps whole output blocks from reuse, so a subscriber that
// stopped reading would otherwise keep its buffer's worth of events'
// blocks. The events a dropped subscriber had not taken are discarded, and
// their Holds released, at once: a subscriber that never reads again keeps
// nothing in the hub.
//
// Every subscriber of a topic sees the topic's events in one order, the order
// in which Publish calls for it ran; publishes to different topics run in
// parallel. Events are handed out as they are, not copied: subscribers share
// an event's Command and Chunks and must not change them. An event's Hold
// is retained once for each subscriber it is handed to.
//
// A Hub starts no goroutines. The zero value is not usable; call New.
type Hub struct {
	// mu guards topics. Changes to the map hold it for writing; Publish
	// holds it for reading while it sends, so a topic found in the map
	// stays there until the send is done.
	mu     sync.RWMutex
	topics map[string]*topic
	budget int // the most output bytes buffered for a subscriber
}

var _ domain.Hub = (*Hub)(nil)

// topic is the set of subscribers of one topic.
type topic struct {
	// mu serializes publishes to the topic and guards subs and every
	// subscription's closed flag. It is taken after Hub.mu.
	mu   sync.Mutex
	subs map[*subscription]struct{}
}

// subscription is one subscriber's channel.
type subscription struct {
	hub    *Hub
	name   string
	topic  *topic
	ch     chan domain.Event
	done   chan struct{} // closed with ch
	lagged atomic.Bool

	// Guarded by topic.mu.
	closed bool
	sent   uint64 // events sent on ch
	// unread are the events with output among the last sent, oldest
	// first, which ch may still buffer, and bytes is their output.
	unread []sentEvent
	bytes  int
}

// sentEvent is an event with output sent to a subscriber: which one it was
// (its count among the events sent) and its bytes of output.
type sentEvent struct {
	n     uint64
	bytes int
}

var _ domain.HubSubscription = (*subscription)(nil)

// New returns an empty hub that buffers up to DefaultBudget bytes of output
// for each subscriber.
func New() *Hub {
	return NewWithBudget(DefaultBudget)
}

// NewWithBudget returns an empty hub that buffers up to budget bytes of
// output for each subscriber (DefaultBudget if budget is 0 or less). One
// event is handed to a subscriber that has none waiting whatever its size.
func NewWithBudget(budget int) *Hub {
	if budget <= 0 {
		budget = DefaultBudget
	}
	return &Hub{topics: map[string]*topic{}, budget: budget}
}

// Subscribe returns a subscription to name's events from now on, with a
// channel buffer of buffer events (DefaultBuffer if buffer is 0 or less).
// The caller must Close it when done.
func (h *Hub) Subscribe(name string, buffer int) domain.HubSubscription {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &subscription{hub: h, name: name, ch: make(chan domain.Event, buffer), done: make(chan struct{})}

	// Most subscriptions join a topic that exists; that needs only the
	// read lock, so it does not stall publishes to other topics.
	h.mu.RLock()
	if t := h.topics[name]; t != nil {
		t.add(s)
		h.mu.RUnlock()
		return s
	}
	h.mu.RUnlock()

	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[name]
	if t == nil {
		t = &topic{subs: map[*subscription]struct{}{}}
		h.topics[name] = t
	}
	t.add(s)
	return s
}

func (t *topic) add(s *subscription) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s.topic = t
	t.subs[s] = struct{}{}
}

// Publish delivers e to every subscriber of name, in the order of the
// Publish calls, without blocking: a subscriber whose buffer is full, in
// events or in output bytes, is dropped (Lagged reports true, its channel
// is closed, and the events it had not taken are discarded). Publishing to a
// topic without subscribers does nothing.
func (h *Hub) Publish(name string, e domain.Event) {
	h.mu.RLock()
	t := h.topics[name]
	if t == nil {
		h.mu.RUnlock()
		return
	}
	size := outputBytes(e)
	t.mu.Lock()
	for s := range t.subs {
		if !s.offer(e, size, h.budget) {
			s.lagged.Store(true)
			t.remove(s)
		}
	}
	empty := len(t.subs) == 0
	t.mu.Unlock()
	h.mu.RUnlock()
	if empty {
		h.dropIfEmpty(name, t)
	}
}

// outputBytes is the size of the output e carries.
func outputBytes(e domain.Event) int {
	n := 0
	for i := range e.Chunks {
		n += len(e.Chunks[i].Data)
	}
	return n
}

// offer sends e, which carries size bytes of output, to s, unless s's
// buffer has no room for it: all its places are taken, or it holds output
// already and e's would take that past budget. The topic's mu must be
// held.
func (s *subscription) offer(e domain.Event, size, budget int) bool {
	if size > 0 {
		s.forgetTaken()
		if s.bytes > 0 && s.bytes+size > budget {
			return false
		}
	}
	// The subscriber's reference, taken before it can see the event; the
	// publisher holds its own until Publish returns.
	e.Hold.Retain()
	select {
	case s.ch <- e:
	default:
		e.Hold.Release()
		return false
	}
	s.sent++
	if size > 0 {
		s.unread = append(s.unread, sentEvent{n: s.sent, bytes: size})
		s.bytes += size
	}
	return true
}

// forgetTaken stops counting the output of the events s's subscriber has
// taken: only publishes send on the channel, and they hold the topic's mu,
// so the channel buffers the last len(s.ch) events sent, or fewer if the
// subscriber is taking one right now (which is then still counted). The
// topic's mu must be held.
func (s *subscription) forgetTaken() {
	taken := s.sent - uint64(len(s.ch))
	i := 0
	for ; i < len(s.unread) && s.unread[i].n <= taken; i++ {
		s.bytes -= s.unread[i].bytes
	}
	s.unread = append(s.unread[:0], s.unread[i:]...)
}

// remove unsubscribes s and closes its channel. The events still in it are
// taken out and their Holds released: whether s was dropped or closed, its
// subscriber is not going to use them, and one that stopped reading would
// otherwise keep their output blocks. t.mu must be held.
func (t *topic) remove(s *subscription) {
	if s.closed {
		return
	}
	s.closed = true
	delete(t.subs, s)
	close(s.ch)
	close(s.done)
	// The subscriber may be taking events at the same time; each goes to
	// one of us.
	for e := range s.ch {
		e.Hold.Release()
	}
	s.unread, s.bytes = nil, 0
}

// dropIfEmpty deletes the topic t, named name, if it still has no
// subscribers, so that idle topics cost nothing.
func (h *Hub) dropIfEmpty(name string, t *topic) {
	h.mu.Lock()
	defer h.mu.Unlock()
	// Every change to t.subs holds h.mu (for reading at least), so under
	// the write lock t.subs is stable.
	if h.topics[name] == t && len(t.subs) == 0 {
		delete(h.topics, name)
	}
}

// Subscribers returns how many subscriptions name has.
func (h *Hub) Subscribers(name string) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	t := h.topics[name]
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs)
}

// Topics returns how many topics have subscribers.
func (h *Hub) Topics() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.topics)
}

// Events returns the subscription's channel.
func (s *subscription) Events() <-chan domain.Event { return s.ch }

// Lagged reports whether the subscriber was dropped for falling behind.
func (s *subscription) Lagged() bool { return s.lagged.Load() }

// Done returns a channel closed when the channel of Events is.
func (s *subscription) Done() <-chan struct{} { return s.done }

// Close unsubscribes and closes the channel, discarding the events it still
// buffers. It is idempotent and safe to call concurrently with Publish and
// with itself.
func (s *subscription) Close() {
	h := s.hub
	h.mu.RLock()
	s.topic.mu.Lock()
	s.topic.remove(s)
	empty := len(s.topic.subs) == 0
	s.topic.mu.Unlock()
	h.mu.RUnlock()
	if empty {
		h.dropIfEmpty(s.name, s.topic)
	}
}
