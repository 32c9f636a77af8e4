package domain

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"
)

// OutputConfig shapes how a command's output is cut and kept.
type OutputConfig struct {
	// Cap is the most output bytes stored per command. Past it the command
	// keeps running, the first Cap-TailWindow bytes and the last TailWindow
	// bytes (or a little less, in whole chunks) are kept, and the command is
	// marked truncated.
	Cap        int64
	TailWindow int64
	// MaxChunk is the largest chunk; output is cut at the last newline
	// within it where there is one, and never inside a UTF-8 character.
	MaxChunk int
	// FlushDelay is how long a partial line waits for its newline before it
	// is sent on its own.
	FlushDelay time.Duration
	// MaxPending is how many bytes may wait for storage before the
	// command's writes block (back-pressure, never loss).
	MaxPending int
	// BusyHold is how long the complete lines of a busy stream, one
	// written to again within a millisecond, wait to be joined by more
	// before they are sent; negative sends them at once.
	BusyHold time.Duration
	// HoldFor is how long output that storage refuses is held, and tried
	// again, before it is given up as lost. Meanwhile at most MaxPending
	// bytes more wait, and then the command's writes block.
	HoldFor time.Duration
}

// DefaultOutputConfig is used for zero fields.
var DefaultOutputConfig = OutputConfig{
	Cap: 10 << 20, TailWindow: 1 << 20, MaxChunk: 64 << 10,
	FlushDelay: 10 * time.Millisecond, MaxPending: 4 << 20, BusyHold: time.Millisecond,
	HoldFor: 5 * time.Minute,
}

func (c OutputConfig) withDefaults() OutputConfig {
	d := DefaultOutputConfig
	if c.Cap > 0 {
		d.Cap = c.Cap
	}
	if c.TailWindow > 0 {
		d.TailWindow = min(c.TailWindow, d.Cap)
	} else {
		d.TailWindow = min(d.TailWindow, d.Cap/2)
	}
	if c.MaxChunk > 0 {
		d.MaxChunk = max(c.MaxChunk, utf8.UTFMax)
	}
	if c.FlushDelay > 0 {
		d.FlushDelay = c.FlushDelay
	}
	if c.MaxPending > 0 {
		d.MaxPending = c.MaxPending
	}
	if c.BusyHold != 0 {
		d.BusyHold = max(c.BusyHold, 0)
	}
	if c.HoldFor > 0 {
		d.HoldFor = c.HoldFor
	}
	// A chunk larger than the tail window would be dropped whole, losing
	// the very end of the output.
	d.MaxChunk = max(min(d.MaxChunk, int(d.TailWindow)), utf8.UTFMax)
	return d
}

// recorder turns a command's two output streams into numbered chunks and
// stores them in batches: one write takes everything that accumulated while
// the previous one ran, merging adjacent pieces of one stream into chunks of
// up to MaxChunk. So an idle command's line is stored at once, and a busy
// one's output travels in large chunks. Each batch is published after it is
// stored, so a subscriber never sees a chunk that storage lacks — except the
// live tail of a truncated command, which is stored when it ends.
//
// Writes are fenced by the command's lease. A batch that storage refuses is
// tried again, with back-off, for up to HoldFor while later output waits
// (and then blocks the command); past that it is given up and counted in
// lostBytes, never in truncated. A lost lease stops all writing and calls
// onLeaseLost, which stops the process.
type recorder struct {
	cfg   OutputConfig
	cmdID string
	lease Lease
	recorderDeps

	mu         sync.Mutex
	endedAt    time.Time  // set by close
	drained    *sync.Cond // signalled when pending shrinks or work arrives
	partial    map[Stream][]byte
	fills      map[Stream]*block // the block each stream's partial is in
	pool       *sync.Pool        // of blocks of blockSize MaxChunks
	lastWrite  map[Stream]time.Time
	timers     map[Stream]*time.Timer
	deadlines  map[Stream]time.Time // when an armed timer fires
	pending    []segment
	pendingLen int
	closed     bool

	// Owned by the store goroutine until done is closed.
	seq        int64 // last seq given out
	total      int64 // every byte written
	lastStored int64
	pastHead   bool      // output outgrew the head: the rest goes to the tail window
	truncated  bool      // output was dropped from the tail window
	lostBytes  int64     // output storage refused for longer than HoldFor
	leaseLost  bool      // a write found the lease lost: nothing more is stored
	failing    time.Time // when storage began refusing output, if it does
	headRoom   int64     // bytes that may still be stored in the head
	tail       []OutputChunk
	tailBlocks []*block // the blocks of tail's chunks, one reference each
	tailLen    int64
	done       chan struct{}
}

// segment is a piece of one stream that ends at a line or character
// boundary, waiting to be numbered and stored. It holds a reference of the
// block its bytes are in.
type segment struct {
	stream Stream
	data   []byte
	blk    *block
	at     time.Time
}

// recorderDeps are what a recorder writes to and tells.
type recorderDeps struct {
	repo  CommandRepository
	hub   Hub
	bcast Broadcaster
	log   *slog.Logger
	now   func() time.Time
	// writes, if not nil, learns whether storage takes output.
	writes *WriteHealth
	// onLeaseLost, if not nil, is called once when a write finds the
	// lease lost.
	onLeaseLost func()
	// giveUp, when closed, ends the holding of output storage refuses: it
	// is lost at once (rdev is shutting down).
	giveUp <-chan struct{}
}

func newRecorder(lease Lease, cfg OutputConfig, deps recorderDeps) *recorder {
	cfg = cfg.withDefaults()
	if deps.onLeaseLost == nil {
		deps.onLeaseLost = func() {}
	}
	r := &recorder{
		cfg: cfg, cmdID: lease.CommandID, lease: lease, recorderDeps: deps,
		headRoom: cfg.Cap - cfg.TailWindow,
		partial:  map[Stream][]byte{}, fills: map[Stream]*block{}, lastWrite: map[Stream]time.Time{},
		timers: map[Stream]*time.Timer{}, deadlines: map[Stream]time.Time{},
		done: make(chan struct{}), pool: blockPool(blockSize * cfg.MaxChunk),
	}
	r.drained = sync.NewCond(&r.mu)
	go r.store()
	return r
}

// writer returns the io.Writer for one stream.
func (r *recorder) writer(s Stream) io.Writer { return streamWriter{r, s} }

type streamWriter struct {
	r *recorder
	s Stream
}

// Write never fails; it blocks only while too much output waits for
// storage.
func (w streamWriter) Write(p []byte) (int, error) {
	w.r.write(w.s, p)
	return len(p), nil
}

func (r *recorder) write(s Stream, p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for r.pendingLen > r.cfg.MaxPending && !r.closed {
		r.drained.Wait()
	}
	if r.closed {
		// Too late to be sent, and the stream's block is released.
		return
	}
	now := time.Now()
	busy := r.cfg.BusyHold > 0 && now.Sub(r.lastWrite[s]) < busyGap
	r.lastWrite[s] = now
	buf := r.cutLines(s, r.fill(s, p), busy)
	r.partial[s] = buf
	switch {
	case len(buf) == 0:
	case bytes.IndexByte(buf, '\n') >= 0:
		r.armFlush(s, min(r.cfg.BusyHold, r.cfg.FlushDelay))
	default:
		r.armFlush(s, r.cfg.FlushDelay)
	}
}

// A write that comes within busyGap of the stream's last one finds the
// stream busy: its complete lines wait, up to BusyHold, to be joined by more,
// so that output arriving in a stream of small writes goes out in chunks of
// a useful size instead of one per write. Lines written now and then (a
// log, an agent's messages) go out at once.
const busyGap = time.Millisecond

// blockSize is the size of the blocks a stream's output is copied into,
// in MaxChunks: chunks are cut from them in place, so output is copied
// once, and neighbouring chunks of a stream are neighbours in memory too,
// which lets the store loop join them without copying. A block is freed
// once no chunk cut from it is held any more; the tail window of a truncated
// command holds about its own size of them.
const blockSize = 4

// fill appends p to the stream's unsent bytes, partial[s], and returns
// them. They grow in place while the block they are in has room behind
// them: the bytes before them belong to chunks already cut, which nothing
// writes to again. Otherwise they move to a new block, and the stream lets
// go of the old one (pieces cut from it hold references of their own).
func (r *recorder) fill(s Stream, p []byte) []byte {
	prev := r.partial[s]
	if cap(prev)-len(prev) >= len(p) {
		return append(prev, p...)
	}
	var b *block
	if size := blockSize * r.cfg.MaxChunk; len(prev)+len(p) <= size {
		b = newBlock(len(prev)+len(p), size, r.pool)
	} else {
		b = newBlock(len(prev)+len(p), len(prev)+len(p), nil) // one of a kind
	}
	copy(b.buf[copy(b.buf, prev):], p)
	r.fills[s].release()
	r.fills[s] = b
	return b.buf
}

// cutLines emits every complete line of buf, in pieces of at most MaxChunk,
// and returns the unfinished rest. On a busy stream, and whenever buf
// outgrew MaxChunk (output is arriving faster than it is sent), it emits only
// full-size pieces: the rest waits, lines and all, to be joined by the next
// write, or for the flush timer.
func (r *recorder) cutLines(s Stream, buf []byte, busy bool) []byte {
	busy = busy || len(buf) > r.cfg.MaxChunk
	for len(buf) > 0 {
		var n int
		if len(buf) > r.cfg.MaxChunk {
			n = bytes.LastIndexByte(buf[:r.cfg.MaxChunk], '\n') + 1
			if n == 0 {
				n = runeBoundary(buf, r.cfg.MaxChunk)
			}
		} else if busy {
			break
		} else if n = bytes.LastIndexByte(buf, '\n') + 1; n == 0 {
			break
		}
		r.emit(s, buf[:n])
		buf = buf[n:]
	}
	// The rest keeps its place in the block, with the block's room behind
	// it for the next write.
	return buf
}

// runeBoundary returns the largest n ≤ limit that does not split a UTF-8
// character of buf (or limit itself when the bytes there are not UTF-8).
func runeBoundary(buf []byte, limit int) int {
	for n := limit; n > limit-utf8.UTFMax && n > 0; n-- {
		if utf8.RuneStart(buf[n]) {
			return n
		}
	}
	return limit
}

// armFlush makes sure what a stream holds back is sent within delay: its
// complete lines, or a partial line on its own if no newline follows, so
// that prompts and progress bars show up live. A deadline already set and
// sooner stands: writes that keep coming do not push it back.
func (r *recorder) armFlush(s Stream, delay time.Duration) {
	at := time.Now().Add(delay)
	if d, ok := r.deadlines[s]; ok && !d.After(at) {
		return
	}
	r.deadlines[s] = at
	if t := r.timers[s]; t != nil {
		t.Reset(delay)
		return
	}
	r.timers[s] = time.AfterFunc(delay, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.deadlines, s)
		buf := r.partial[s]
		if n := bytes.LastIndexByte(buf, '\n') + 1; n > 0 {
			r.emit(s, buf[:n])
			if r.partial[s] = buf[n:]; n < len(buf) {
				r.armFlush(s, r.cfg.FlushDelay)
			}
			return
		}
		r.flushPartial(s, false)
	})
}

// flushPartial emits a stream's unfinished line. Unless final, a trailing
// incomplete UTF-8 character waits for its remaining bytes.
func (r *recorder) flushPartial(s Stream, final bool) {
	buf := r.partial[s]
	n := len(buf)
	if !final && n > 0 {
		i := n - 1 // the start of the last character
		for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(buf[i]) {
			i--
		}
		if !utf8.FullRune(buf[i:]) {
			n = i
		}
	}
	if n > 0 {
		r.emit(s, buf[:n])
		r.partial[s] = buf[n:]
	}
}

// emit queues a piece for the store loop, which takes data over: the caller
// must not write to its bytes again. The caller holds r.mu.
func (r *recorder) emit(s Stream, data []byte) {
	if r.closed {
		return
	}
	// Kept with its capacity, the rest of its block, which join needs: no
	// one may append to it, as the bytes after it are the stream's next
	// output. data is always in the stream's block: fill put it there.
	blk := r.fills[s]
	blk.retain()
	at := r.now()
	if !r.endedAt.IsZero() && at.After(r.endedAt) {
		// What close flushes was written before the process ended.
		at = r.endedAt
	}
	r.pending = append(r.pending, segment{stream: s, data: data, blk: blk, at: at})
	r.pendingLen += len(data)
	r.drained.Broadcast()
}

// store is the storage loop: it numbers, stores and publishes whatever
// accumulated, batch by batch, until closed and drained; then it stores the
// tail window of a truncated command.
func (r *recorder) store() {
	defer close(r.done)
	for {
		r.mu.Lock()
		for len(r.pending) == 0 && !r.closed {
			r.drained.Wait()
		}
		batch := r.pending
		r.pending, r.pendingLen = nil, 0
		r.drained.Broadcast()
		closed := r.closed
		r.mu.Unlock()

		if len(batch) > 0 {
			r.commit(batch)
		} else if closed {
			break
		}
	}
	if len(r.tail) > 0 {
		r.append(r.tail, r.tailBlocks)
		r.tail, r.tailBlocks = nil, nil
	}
	if !r.failing.IsZero() {
		r.writes.recovered() // this writer is done, failing or not
	}
}

// commit numbers a batch of pieces (merging neighbours of one stream), stores
// the chunks that fit under the cap, and sends the rest live into the tail
// window. Each chunk takes over a reference of its block from its pieces,
// which the event that publishes it holds (see Hold); the tail window holds
// one more.
func (r *recorder) commit(batch []segment) {
	var stored, live []OutputChunk
	var storedBlocks, liveBlocks []*block
	for i := 0; i < len(batch); {
		seg := batch[i]
		data, blk := seg.data, seg.blk
		limit := int64(r.cfg.MaxChunk)
		if !r.pastHead && int64(len(data)) <= r.headRoom {
			limit = min(limit, r.headRoom) // a merge must not push the head into the tail
		}
		for i++; i < len(batch) && batch[i].stream == seg.stream && int64(len(data)+len(batch[i].data)) <= limit; i++ {
			var inPlace bool
			if data, inPlace = join(data, batch[i].data); !inPlace {
				// Copied out of the blocks: the chunk is in none.
				blk.release()
				blk = nil
			}
			// In place, the piece is in blk, whose reference the chunk has.
			batch[i].blk.release()
		}
		r.seq++
		c := OutputChunk{CommandID: r.cmdID, Seq: r.seq, Stream: seg.stream, Data: frozenString(data), At: seg.at.UTC().Truncate(time.Microsecond)}
		size := int64(len(data))
		r.total += size
		if !r.pastHead && size <= r.headRoom {
			r.headRoom -= size
			stored = append(stored, c)
			storedBlocks = append(storedBlocks, blk)
			continue
		}
		r.pastHead = true
		live = append(live, c)
		liveBlocks = append(liveBlocks, blk)
		blk.retain()
		r.tail = append(r.tail, c)
		r.tailBlocks = append(r.tailBlocks, blk)
		r.tailLen += size
		for len(r.tail) > 0 && r.tailLen > r.cfg.TailWindow {
			r.tailLen -= int64(len(r.tail[0].Data))
			r.tailBlocks[0].release()
			r.tail, r.tailBlocks = r.tail[1:], r.tailBlocks[1:]
			r.truncated = true
		}
	}
	if len(stored) > 0 {
		r.append(stored, storedBlocks)
	}
	if len(live) > 0 {
		hold := newHold(liveBlocks)
		if !r.leaseLost { // another process ended the command
			r.hub.Publish(CommandTopic(r.cmdID), Event{Kind: EventOutput, CommandID: r.cmdID, Chunks: live, UpTo: r.lastStored, Hold: hold})
		}
		hold.Release()
	}
}

// Storing output is tried again after storeRetryFirst, doubling up to
// storeRetryLongest, and each try is given storeTimeout: a database that stopped
// answering (paused, or cut off) must not hold a try forever.
const (
	storeRetryFirst   = 50 * time.Millisecond
	storeRetryLongest = 2 * time.Second
	storeTimeout      = 10 * time.Second
)

// append stores chunks under the lease, then publishes them. While storage
// refuses them it tries again, with back-off, until HoldFor has passed since
// it began refusing; then it gives them up as lost. It takes over a
// reference of each of blks, the chunks' blocks.
func (r *recorder) append(chunks []OutputChunk, blks []*block) {
	hold := newHold(blks)
	defer hold.Release()
	if r.leaseLost {
		return
	}
	for wait := storeRetryFirst; ; wait = min(wait*2, storeRetryLongest) {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		err := r.repo.AppendOutput(ctx, r.lease, chunks)
		cancel()
		if err == nil {
			r.stored()
			break
		}
		if errors.Is(err, ErrLeaseLost) {
			r.leaseLost = true
			r.log.Warn("command lost its lease: stopping it; its output is no longer stored", "command", r.cmdID, "err", err)
			r.onLeaseLost()
			return
		}
		now := time.Now()
		if r.failing.IsZero() {
			r.failing = now
			r.writes.failed(now, err)
			r.log.Warn("storing output failed: holding it until storage is back", "command", r.cmdID, "hold_for", r.cfg.HoldFor.String(), "err", err)
		}
		if code := ErrorCode(err); code == EINVALID || code == ENOTFOUND || now.Sub(r.failing) >= r.cfg.HoldFor {
			r.lose(chunks, err)
			return
		}
		select {
		case <-time.After(wait):
		case <-r.giveUp:
			r.lose(chunks, err)
			return
		}
	}
	r.lastStored = chunks[len(chunks)-1].Seq
	e := Event{Kind: EventOutput, CommandID: r.cmdID, Chunks: chunks, UpTo: r.lastStored, Hold: hold}
	publish(context.Background(), r.hub, r.bcast, CommandTopic(r.cmdID), e)
}

// stored notes that storage took output again.
func (r *recorder) stored() {
	if !r.failing.IsZero() {
		r.log.Info("storing output works again", "command", r.cmdID, "after", time.Since(r.failing).Round(time.Millisecond).String())
		r.failing = time.Time{}
		r.writes.recovered()
	}
}

// lose gives up chunks that could not be stored: they are counted in
// lostBytes, logged and never published.
func (r *recorder) lose(chunks []OutputChunk, err error) {
	var n int64
	for _, c := range chunks {
		n += int64(len(c.Data))
	}
	r.lostBytes += n
	r.writes.lost(n)
	r.log.Error("output lost: storage refused it for too long", "command", r.cmdID,
		"first_seq", chunks[0].Seq, "last_seq", chunks[len(chunks)-1].Seq, "bytes", n, "err", err)
}

// join returns a followed by b. When b starts where a ends within a's block
// (a's capacity reaches over b), as a stream's pieces cut one after the
// other do, that is a longer view of the block, and inPlace is true;
// otherwise it is a copy. The capacity check matters: another allocation
// may happen to begin where a's block ends.
func join(a, b []byte) (joined []byte, inPlace bool) {
	if len(b) <= cap(a)-len(a) && unsafe.SliceData(a[len(a):]) == unsafe.SliceData(b) {
		return a[:len(a)+len(b)], true
	}
	return append(a[:len(a):len(a)], b...), false
}

// frozenString returns b's bytes as a string without copying them. b must
// never be written again: segments' bytes are not, once emitted, and output
// is most of what passes through the recorder.
func frozenString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// recorded is what a recorder stored, for the command's final state.
// lastSeq is the seq of the last chunk: the last stored, unless output after
// it was lost, which live subscribers may have been sent (the tail of a
// truncated command is stored when the command ends).
type recorded struct {
	total, lastSeq, lostBytes int64
	truncated, leaseLost      bool
}

// close sends unfinished lines, waits until all output and the tail window
// are stored (or given up), and returns what was recorded. endedAt, if not
// zero, is when the process ended: nothing sent from then on is stamped
// later.
func (r *recorder) close(endedAt time.Time) recorded {
	r.mu.Lock()
	r.endedAt = endedAt
	for s, t := range r.timers {
		t.Stop()
		delete(r.timers, s)
	}
	for _, s := range []Stream{Stdout, Stderr} {
		r.flushPartial(s, true)
	}
	r.closed = true
	r.drained.Broadcast()
	// Nothing is written into the streams' blocks any more: write drops
	// what comes after close.
	for s, b := range r.fills {
		b.release()
		delete(r.fills, s)
		r.partial[s] = nil
	}
	r.mu.Unlock()
	<-r.done
	last := r.lastStored
	if r.lostBytes > 0 {
		last = r.seq
	}
	return recorded{total: r.total, lastSeq: last, lostBytes: r.lostBytes, truncated: r.truncated, leaseLost: r.leaseLost}
}
