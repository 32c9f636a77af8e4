package domain

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// newBlock's blocks have the length and room asked for, are apart from each
// other, and keep what is written to them.
func TestNewBlock(t *testing.T) {
	const size = 256 << 10
	a, b := newBlock(10, size, nil).buf, newBlock(0, size, nil).buf
	if len(a) != 10 || cap(a) < size || len(b) != 0 || cap(b) < size {
		t.Fatalf("len/cap %d/%d and %d/%d, want 10/%d and 0/%d at least", len(a), cap(a), len(b), cap(b), size, size)
	}
	pa, pb := unsafe.SliceData(a), unsafe.SliceData(b)
	a = append(a[:0], strings.Repeat("a", size)...)
	b = append(b, strings.Repeat("b", size)...)
	if unsafe.SliceData(a) != pa || unsafe.SliceData(b) != pb {
		t.Error("filling a block to its size moved it")
	}
	if strings.Count(string(a), "a") != size || strings.Count(string(b), "b") != size {
		t.Error("the blocks overlap")
	}
}

// A block is released when its last reference goes, and only then; in a
// build with the race detector its bytes are overwritten then. A release
// too many panics rather than recycle memory in use.
func TestBlock_Release(t *testing.T) {
	b := newBlock(4, 64, nil)
	copy(b.buf, "data")
	b.retain()
	before := blocks.released.Load()
	b.release()
	if blocks.released.Load() != before || string(b.buf) != "data" {
		t.Fatalf("released with a reference left: %d released, bytes %q", blocks.released.Load()-before, b.buf)
	}
	b.release()
	if got := blocks.released.Load() - before; got != 1 {
		t.Fatalf("%d blocks released, want 1", got)
	}
	if poisonReleased && b.buf[0] != poison {
		t.Errorf("a released block kept its bytes %q", b.buf[:4])
	}
	defer func() {
		if recover() == nil {
			t.Error("releasing a released block did not panic")
		}
	}()
	b.release()
}

// A Hold releases each of its blocks' references once its own last
// reference goes.
func TestHold(t *testing.T) {
	a, b := newBlock(0, 64, nil), newBlock(0, 64, nil)
	a.retain() // a second chunk in a
	h := newHold([]*block{a, nil, a, b})
	h.Retain()
	before := blocks.released.Load()
	h.Release()
	if blocks.released.Load() != before {
		t.Fatal("blocks released while the hold had a reference")
	}
	h.Release()
	if got := blocks.released.Load() - before; got != 2 || a.refs.Load() != 0 || b.refs.Load() != 0 {
		t.Errorf("%d blocks released, references left %d and %d; want 2, 0 and 0", got, a.refs.Load(), b.refs.Load())
	}
	var none *Hold
	none.Retain()
	none.Release()
}

// blockLines is the output the recycling tests write: numbered lines.
func blockLines(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "line %06d\n", i)
	}
	return b.String()
}

// recordThrough writes text through a recorder for the RUNNING command id,
// with blocks of 400 bytes and the whole output stored: in writes of varied
// sizes, pausing now and then so that it is published in many events. Then
// it finishes the command and announces it.
func recordThrough(t *testing.T, e *commandEnv, id string, text string) {
	t.Helper()
	rec := newRecorder(Lease{CommandID: id, Owner: producerOwner}, OutputConfig{Cap: 64 << 20, MaxChunk: 100, FlushDelay: time.Millisecond, BusyHold: -1}, recorderDeps{repo: e.repo, hub: e.hub, log: discardLogger, now: time.Now})
	go func() {
		w := rec.writer(Stdout)
		for i, rest := 0, text; len(rest) > 0; i++ {
			n := min(len(rest), 1+i%97)
			_, _ = w.Write([]byte(rest[:n]))
			rest = rest[n:]
			if i%20 == 0 {
				time.Sleep(100 * time.Microsecond)
			}
		}
		out := rec.close(time.Time{})
		c, err := e.repo.FinishCommand(context.Background(), Lease{CommandID: id, Owner: producerOwner}, Finish{
			Status: CommandSucceeded, ExitCode: ptr(0), FinishedAt: time.Now().UTC(),
			OutputBytes: out.total, LastSeq: out.lastSeq, Truncated: out.truncated,
		}, nil)
		if err != nil {
			t.Error(err)
			return
		}
		publishStatus(context.Background(), e.hub, nil, c)
	}()
}

// transient opens a transient stream of events as they are.
func transient(t *testing.T, e *commandEnv, id string) <-chan OutputEvent {
	t.Helper()
	ctx := NewContextWithCaller(t.Context(), &Caller{Key: readerKey})
	ch, err := TransientOutputAs(ctx, e.svc, id, 0, func(e OutputEvent) OutputEvent { return e })
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// TestTransientOutput_RecyclesBlocks: a transient stream's receiver finds
// each chunk intact until it takes the next one (in a build with the race
// detector, a chunk recycled too early would be overwritten), gets the whole output in
// order (also when it lags, is dropped by the hub and catches up from
// storage), and the blocks of what it has read are recycled.
func TestTransientOutput_RecyclesBlocks(t *testing.T) {
	e := newCommandEnv(t)
	e.hub.passOnly = true
	text := blockLines(20000) // 240 KB: 600 blocks of 400 bytes
	before := blocks.released.Load()
	id := newProducer(t, e).id
	ch := transient(t, e, id)
	recordThrough(t, e, id, text)
	var got strings.Builder
	i := 0
	for ev := range ch {
		if ev.Finished != nil {
			break
		}
		data := strings.Clone(ev.Chunk.Data)
		if i++; i%50 == 0 {
			time.Sleep(2 * time.Millisecond) // falls behind now and then
		}
		if ev.Chunk.Data != data {
			t.Fatalf("chunk %d changed before the next was taken", ev.Chunk.Seq)
		}
		got.WriteString(data)
	}
	if got.String() != text {
		t.Fatalf("received %d bytes, not the %d written in order", got.Len(), len(text))
	}
	// The last few events the receiver took are left to the garbage
	// collector.
	if released := blocks.released.Load() - before; released < 540 {
		t.Errorf("%d blocks released after reading 600 blocks' worth, want nearly all", released)
	}
}

// TestOutput_KeepsBlocks: the chunks of a stream that is not transient stay
// intact after the stream is over, while other output is recorded through
// recycled blocks: no block is recycled under them.
func TestOutput_KeepsBlocks(t *testing.T) {
	e := newCommandEnv(t)
	e.hub.passOnly = true
	text := blockLines(5000)
	id := newProducer(t, e).id
	ch := output(t, t.Context(), e, id, 0)
	recordThrough(t, e, id, text)
	var chunks []*OutputChunk
	for ev := range ch {
		if ev.Chunk != nil {
			chunks = append(chunks, ev.Chunk)
		}
	}
	// Whether a block was released under the kept chunks is told by their
	// bytes at the end: under the race detector a released block is
	// overwritten, and otherwise the other commands' output below reuses
	// it. (Counting releases is no test: the counter is the process's, and
	// streams of earlier tests may still be letting go of theirs.)
	//
	// Another command's output, read by a transient stream, recycles its
	// blocks; nothing of it may land in the first command's.
	released := blocks.released.Load()
	for range 3 {
		id := newProducer(t, e).id
		other := transient(t, e, id)
		recordThrough(t, e, id, strings.Repeat("x\n", len(text)/2))
		for range other {
		}
	}
	if blocks.released.Load() == released {
		t.Error("no block was recycled for the other commands")
	}
	var got strings.Builder
	for _, c := range chunks {
		got.WriteString(c.Data)
	}
	if got.String() != text {
		t.Errorf("kept chunks changed after the stream ended")
	}
}

// A released block of a pool is handed out again by it, with one
// reference; one of no pool is not.
func TestBlock_Recycled(t *testing.T) {
	pool := blockPool(64)
	if blockPool(64) != pool || blockPool(128) == pool {
		t.Fatal("blockPool does not keep one pool per size")
	}
	reused := false
	// sync.Pool may drop what is put (it does at random under the race
	// detector), so a few tries.
	for range 20 {
		b := newBlock(0, 64, pool)
		b.release()
		if c := newBlock(3, 64, pool); c == b {
			reused = true
			if len(c.buf) != 3 || c.refs.Load() != 1 {
				t.Fatalf("a recycled block has length %d and %d references, want 3 and 1", len(c.buf), c.refs.Load())
			}
			break
		}
	}
	if !reused {
		t.Error("a released block was never handed out again")
	}
	b := newBlock(0, 64, nil)
	b.release()
	if c := newBlock(0, 64, pool); c == b {
		t.Error("a block of no pool was recycled")
	}
}
