package domain

import (
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// block is memory a stream's output is copied into (see recorder.fill).
// Chunks are cut from it in place, and it is recycled once nothing refers
// to their bytes any more: refs counts the recorder's own uses (the block a
// stream is being written into, each piece waiting to be stored, each chunk
// of the tail window) and each Hold of a published event. A block whose
// count never reaches zero, because some holder does not release it, is
// simply collected as garbage: releasing is what makes reuse safe, and
// forgetting to is never unsafe.
type block struct {
	buf  []byte
	refs atomic.Int32
	pool *sync.Pool // where it goes when released; nil: to the collector
}

// blocks holds the pools of recycled blocks, one per size a recorder cuts
// its blocks in (blockSize MaxChunks, which a process configures once), and
// counts the blocks released.
var blocks struct {
	pools    sync.Map // int → *sync.Pool
	released atomic.Int64
}

// blockPool returns the pool of blocks of size.
func blockPool(size int) *sync.Pool {
	if p, ok := blocks.pools.Load(size); ok {
		return p.(*sync.Pool)
	}
	p, _ := blocks.pools.LoadOrStore(size, new(sync.Pool))
	return p.(*sync.Pool)
}

// newBlock returns a block with one reference, whose buf has length n and
// capacity size, taken from pool when it has one (a nil pool: the block is
// not recycled). Its bytes are not zeroed: they are written before they are
// read. A new block's memory is allocated unzeroed through strings.Builder,
// whose buffer is a runtime-internal allocation that a plain make cannot ask
// for (zeroing was a tenth of what copying output into a block cost).
func newBlock(n, size int, pool *sync.Pool) *block {
	if pool != nil {
		if b, ok := pool.Get().(*block); ok {
			b.buf = b.buf[:n]
			b.refs.Store(1)
			return b
		}
	}
	var sb strings.Builder
	sb.Grow(size)
	sb.WriteByte(0) // a builder's String is empty until it holds something
	b := &block{buf: unsafe.Slice(unsafe.StringData(sb.String()), size)[:n], pool: pool}
	b.refs.Store(1)
	return b
}

// retain adds a reference; a nil block (bytes outside any block) has none.
func (b *block) retain() {
	if b != nil {
		b.refs.Add(1)
	}
}

// release drops a reference. The last one recycles the block: in a build
// with the race detector its bytes are overwritten first, so that output
// read after its release shows up in tests as corrupt, besides the race
// the detector reports.
func (b *block) release() {
	if b == nil {
		return
	}
	switch n := b.refs.Add(-1); {
	case n > 0:
	case n < 0:
		panic("domain: output block released more often than retained")
	default:
		blocks.released.Add(1)
		b.buf = b.buf[:cap(b.buf)]
		if poisonReleased {
			for i := range b.buf {
				b.buf[i] = poison
			}
		}
		if b.pool != nil {
			b.pool.Put(b)
		}
	}
}

// poison is what a released block is filled with when poisonReleased: not
// text, and never written by the tests' commands.
const poison = 0xFE

// Hold keeps the blocks a published output event's chunks were cut from
// (Event.Hold) from being recycled while anyone may still read them. The
// publisher makes it with one reference, which it releases once Publish
// returns; a Hub retains it once for each subscriber it hands the event to.
// A subscriber that is done with the event's bytes releases its reference;
// one that keeps them, or does not know when it is done, never does, and
// the blocks are then left to the garbage collector. A nil Hold holds
// nothing, and its methods do nothing.
type Hold struct {
	refs   atomic.Int32
	blocks []*block
}

// newHold returns a hold with one reference that owns one reference of
// each of blocks (nil ones stand for chunks outside any block).
func newHold(blocks []*block) *Hold {
	h := &Hold{blocks: blocks}
	h.refs.Store(1)
	return h
}

// Retain adds a reference.
func (h *Hold) Retain() {
	if h != nil {
		h.refs.Add(1)
	}
}

// Release drops a reference; the last one releases the blocks.
func (h *Hold) Release() {
	if h == nil {
		return
	}
	switch n := h.refs.Add(-1); {
	case n > 0:
	case n < 0:
		panic("domain: output hold released more often than retained")
	default:
		for _, b := range h.blocks {
			b.release()
		}
		h.blocks = nil
	}
}
