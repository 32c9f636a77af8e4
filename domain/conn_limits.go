package domain

import (
	"net/netip"
	"sync"
)

// ConnKind is a kind of long-lived connection a caller holds open.
type ConnKind int

// The kinds ConnLimits counts apart.
const (
	// ConnSocket is a WebSocket connection, counted from its
	// connection_init on (the key it presents there, or its upgrade
	// request's).
	ConnSocket ConnKind = iota
	// ConnStream is an SSE stream: one request whose answer is an event
	// stream.
	ConnStream
	// ConnSubscription is a subscription, over either transport, for as
	// long as it runs. Subscriptions are bounded by this count rather than
	// charged to the request budget: each runs long and asks for little
	// at its start.
	ConnSubscription
	connKinds
)

// String names the kind as metrics and messages do.
func (k ConnKind) String() string {
	switch k {
	case ConnSocket:
		return "websocket"
	case ConnSubscription:
		return "subscription"
	default:
		return "sse"
	}
}

// ConnLimits caps the long-lived connections one caller holds open at once:
// per API key, or, for a caller without a key, per client address. Each
// open connection holds memory, a goroutine or more and a file descriptor
// however little it asks for, so one key cannot take them all. The counts
// are this process's: behind a load balancer with n replicas a caller may
// hold up to n times the cap. A nil *ConnLimits caps nothing and counts
// nothing.
type ConnLimits struct {
	max [connKinds]int

	mu    sync.Mutex
	held  map[connHolder]int
	total [connKinds]int
}

// connHolder is whom a connection counts against.
type connHolder struct {
	kind ConnKind
	key  string     // the API key's ID, or "" for a caller without one
	addr netip.Addr // the client's address when key is ""
}

// NewConnLimits returns limits of at most sockets WebSockets, streams SSE
// streams and subscriptions subscriptions per holder; 0 is no cap.
func NewConnLimits(sockets, streams, subscriptions int) *ConnLimits {
	l := &ConnLimits{held: map[connHolder]int{}}
	l.max[ConnSocket], l.max[ConnStream], l.max[ConnSubscription] = sockets, streams, subscriptions
	return l
}

// Open counts a connection of kind for c and returns the function that ends
// it: call it once the connection is over, however it ended (calling it
// again does nothing). If c holds as many as allowed already it returns
// ERATELIMITED and counts nothing.
func (l *ConnLimits) Open(c *Caller, kind ConnKind) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	h := connHolder{kind: kind, key: c.KeyID()}
	if h.key == "" && c != nil {
		h.addr = c.Addr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit := l.max[kind]; limit > 0 && l.held[h] >= limit {
		whose := "this API key"
		if h.key == "" {
			whose = "this address"
		}
		what := kind.String() + " connections"
		if kind == ConnSubscription {
			what = "subscriptions"
		}
		return nil, Errorf(ERATELIMITED, "too many open %s for %s: at most %d at once; close one first", what, whose, limit)
	}
	l.held[h]++
	l.total[kind]++
	var once sync.Once
	return func() { once.Do(func() { l.release(h) }) }, nil
}

func (l *ConnLimits) release(h connHolder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[h]--; l.held[h] <= 0 {
		delete(l.held, h)
	}
	l.total[h.kind]--
}

// Count returns how many connections of kind are open now, in this process.
func (l *ConnLimits) Count(kind ConnKind) int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total[kind]
}
