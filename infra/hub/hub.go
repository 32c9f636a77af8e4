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

// Hub is a domain.Hub in memory. Publish never blocks on a subscriber: one
// whose buffer is full is marked lagged and dropped, and its channel closed,
// so it reads the rest from storage (see domain.HubSubscription).
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
	lagged atomic.Bool
	closed bool // guarded by topic.mu
}

var _ domain.HubSubscription = (*subscription)(nil)

// New returns an empty hub.
func New() *Hub {
	return &Hub{topics: map[string]*topic{}}
}

// Subscribe returns a subscription to name's events from now on, with a
// channel buffer of buffer events (DefaultBuffer if buffer is 0 or less).
// The caller must Close it when done.
func (h *Hub) Subscribe(name string, buffer int) domain.HubSubscription {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &subscription{hub: h, name: name, ch: make(chan domain.Event, buffer)}

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
// Publish calls, without blocking: a subscriber whose buffer is full is
// dropped (Lagged reports true, and its channel is closed after the events
// it already holds). Publishing to a topic without subscribers does nothing.
func (h *Hub) Publish(name string, e domain.Event) {
	h.mu.RLock()
	t := h.topics[name]
	if t == nil {
		h.mu.RUnlock()
		return
	}
	t.mu.Lock()
	for s := range t.subs {
		// The subscriber's reference, taken before it can see the event;
		// the publisher holds its own until this returns.
		e.Hold.Retain()
		select {
		case s.ch <- e:
		default:
			e.Hold.Release()
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

// remove unsubscribes s and closes its channel. t.mu must be held.
func (t *topic) remove(s *subscription) {
	if s.closed {
		return
	}
	s.closed = true
	delete(t.subs, s)
	close(s.ch)
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

// Close unsubscribes and closes the channel. It is idempotent and safe to
// call concurrently with Publish and with itself.
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
