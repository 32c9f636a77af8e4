package domain

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// producerOwner holds the lease of commands a producer writes.
const producerOwner = "producer"

// producer plays the dispatcher of one RUNNING command: it stores chunks
// and publishes them, one event per chunk, and finishes the command.
type producer struct {
	repo *commandRepo
	hub  *fakeHub
	id   string
	mu   sync.Mutex
	seq  int64
}

// newProducer stores a RUNNING command in project web.
func newProducer(tb testing.TB, e *commandEnv) *producer {
	tb.Helper()
	c := e.queue(tb, &Command{ProjectID: "web", Argv: []string{"ls"}})
	now := time.Now().UTC()
	e.repo.set(func(r *commandRepo) {
		s := r.cmds[c.ID]
		s.Status, s.Owner, s.StartedAt, s.LeaseExpiresAt = CommandRunning, producerOwner, &now, new(now.Add(time.Hour))
	})
	return &producer{repo: e.repo, hub: e.hub, id: c.ID}
}

func chunkData(seq int64) string { return fmt.Sprintf("chunk %d\n", seq) }

// emit stores n chunks, publishing each after storing it unless silent
// (as when another process stored them).
func (p *producer) emit(n int, silent bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range n {
		p.seq++
		c := OutputChunk{CommandID: p.id, Seq: p.seq, Stream: Stdout, Data: chunkData(p.seq), At: time.Now().UTC()}
		if err := p.repo.AppendOutput(context.Background(), Lease{}, []OutputChunk{c}); err != nil {
			return err
		}
		if !silent {
			p.hub.Publish(CommandTopic(p.id), Event{Kind: EventOutput, CommandID: p.id, Chunks: []OutputChunk{c}, UpTo: c.Seq})
		}
	}
	return nil
}

func (p *producer) mustEmit(tb testing.TB, n int) {
	tb.Helper()
	if err := p.emit(n, false); err != nil {
		tb.Fatal(err)
	}
}

// finish writes the final state after the last chunk and announces it.
func (p *producer) finish(tb testing.TB) *Command {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.repo.FinishCommand(context.Background(), Lease{CommandID: p.id, Owner: producerOwner},
		Finish{Status: CommandSucceeded, ExitCode: ptr(0), FinishedAt: time.Now().UTC(), LastSeq: p.seq}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	publishStatus(context.Background(), p.hub, nil, c)
	return c
}

// checkStream checks that a stream delivered exactly from…to, each chunk
// as stored, and then the finished command.
func checkStream(tb testing.TB, chunks []OutputChunk, fin *Command, from, to int64) {
	tb.Helper()
	if got, want := seqs(chunks), seqRange(from, to); !slices.Equal(got, want) {
		tb.Fatalf("got %d chunks %s, want seqs %d…%d", len(got), summarize(got), from, to)
	}
	for _, c := range chunks {
		if c.Data != chunkData(c.Seq) {
			tb.Fatalf("chunk %d holds %q", c.Seq, c.Data)
		}
	}
	if fin == nil {
		tb.Fatal("the stream ended without the finished command")
	}
	if !fin.Status.Final() || fin.LastSeq != to {
		tb.Fatalf("finished command %s with LastSeq %d, want a final status and %d", fin.Status, fin.LastSeq, to)
	}
}

// summarize shortens a seq list for a failure message, showing its gaps.
func summarize(s []int64) string {
	var parts []string
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(s[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d…%d", s[i], s[j]))
		}
		i = j + 1
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// output opens a stream as the reader key.
func output(tb testing.TB, ctx context.Context, e *commandEnv, id string, afterSeq int64) <-chan OutputEvent {
	tb.Helper()
	ch, err := e.svc.Output(NewContextWithCaller(ctx, &Caller{Key: readerKey}), id, afterSeq)
	if err != nil {
		tb.Fatalf("Output(%s, %d): %v", id, afterSeq, err)
	}
	return ch
}

func TestCommandService_Output_Errors(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	p.mustEmit(t, 5)
	p.finish(t)
	running := newProducer(t, e)

	for _, tt := range []struct {
		name     string
		key      *APIKey
		id       string
		afterSeq int64
		code     string
	}{
		{"OKAtTheEnd", readerKey, p.id, 5, ""},
		{"OKRunningPastTheEnd", readerKey, running.id, 100, ""},
		{"ErrInvalidPastTheEnd", readerKey, p.id, 6, EINVALID},
		{"ErrInvalidNegative", readerKey, p.id, -1, EINVALID},
		{"ErrInvalidNegativeRunning", readerKey, running.id, -1, EINVALID},
		{"ErrNotFound", readerKey, NewID(time.Now()), 0, ENOTFOUND},
		{"ErrNotFoundMalformed", readerKey, "nope", 0, ENOTFOUND},
		{"ErrForbidden", otherKey, p.id, 0, EFORBIDDEN},
		{"ErrUnauthenticated", nil, p.id, 0, EUNAUTHENTICATED},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			if tt.key != nil {
				ctx = NewContextWithCaller(ctx, &Caller{Key: tt.key})
			}
			ch, err := e.svc.Output(ctx, tt.id, tt.afterSeq)
			wantCode(t, err, tt.code)
			if (ch == nil) != (tt.code != "") {
				t.Errorf("channel %v with error %v", ch, err)
			}
		})
	}
}

func TestCommandService_Output_Finished(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	const n = 2*streamReadBatch + 34 // several storage reads
	p.mustEmit(t, n)
	p.finish(t)
	for _, after := range []int64{0, 1, streamReadBatch, n - 1, n} {
		t.Run(fmt.Sprint("After", after), func(t *testing.T) {
			chunks, fin := collectOutput(t, output(t, t.Context(), e, p.id, after))
			checkStream(t, chunks, fin, after+1, n)
			if fin.Status != CommandSucceeded {
				t.Errorf("finished %s", fin.Status)
			}
		})
	}
}

// TestCommandService_Output_MidRun subscribes while chunks keep arriving,
// from several points: each gets exactly what follows its afterSeq.
func TestCommandService_Output_MidRun(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	p.mustEmit(t, 100)

	ctx := t.Context()
	afters := []int64{0, 1, 40, 99, 100, 150, 400}
	results := make([][]OutputChunk, len(afters))
	fins := make([]*Command, len(afters))
	var wg sync.WaitGroup
	produced := make(chan error, 1)
	go func() {
		for range 40 {
			if err := p.emit(10, false); err != nil {
				produced <- err
				return
			}
			time.Sleep(100 * time.Microsecond) // let subscribers in between
		}
		produced <- nil
	}()
	for i, after := range afters {
		ch := output(t, ctx, e, p.id, after)
		wg.Go(func() {
			var err error
			if results[i], fins[i], err = readOutput(ch); err != nil {
				t.Errorf("after %d: %v", after, err)
			}
		})
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	p.finish(t)
	wg.Wait()
	for i, after := range afters {
		t.Run(fmt.Sprint("After", after), func(t *testing.T) {
			checkStream(t, results[i], fins[i], after+1, 500)
		})
	}
}

// TestCommandService_Output_Lagging: a subscriber that stops reading is
// dropped by the hub; when it reads again it gets every chunk exactly once,
// caught up from storage.
func TestCommandService_Output_Lagging(t *testing.T) {
	for _, tt := range []struct {
		name        string
		finishWhile bool // finish the command while the reader is away
	}{
		{"OK", false},
		{"OKFinishedWhileAway", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newCommandEnv(t)
			p := newProducer(t, e)
			p.mustEmit(t, 10)
			ch := output(t, t.Context(), e, p.id, 0)
			var got []OutputChunk
			for range 10 {
				ev := <-ch
				got = append(got, *ev.Chunk)
			}
			// Stop reading: the stream fills its channel, then the hub fills
			// the stream's buffer and drops it.
			p.mustEmit(t, 1000)
			waitFor(t, "the hub to drop the lagging stream", func() bool { return e.hub.dropCount() > 0 })
			if tt.finishWhile {
				p.finish(t)
			}
			done := make(chan struct{})
			var rest []OutputChunk
			var fin *Command
			var err error
			go func() { defer close(done); rest, fin, err = readOutput(ch) }()
			if !tt.finishWhile {
				waitFor(t, "the stream to subscribe again", func() bool { return e.hub.subscribers(CommandTopic(p.id)) == 1 })
				p.mustEmit(t, 100)
				p.finish(t)
			}
			<-done
			if err != nil {
				t.Fatal(err)
			}
			want := int64(1010)
			if !tt.finishWhile {
				want = 1110
			}
			checkStream(t, append(got, rest...), fin, 1, want)
		})
	}
}

// TestCommandService_Output_StalledCatchUp: a subscriber that stops
// reading while its stream catches up from storage holds one read of half
// its buffer (and a chunk), not a batch of chunks of whatever size; and
// reads of that size, however many, still deliver every chunk once.
func TestCommandService_Output_StalledCatchUp(t *testing.T) {
	const buffer = 200 // bytes; a chunk here is about 10
	e := newCommandEnv(t)
	e.svc.limits.SubscriberBuffer = buffer
	p := newProducer(t, e)
	if err := p.emit(2*streamReadBatch, true); err != nil {
		t.Fatal(err)
	}
	ch := output(t, t.Context(), e, p.id, 0)
	waitFor(t, "the stream to stall", func() bool { return len(ch) == cap(ch) })
	var held int
	e.repo.set(func(r *commandRepo) {
		for _, n := range r.readBytes {
			held += n
		}
	})
	if most := buffer/2 + len(chunkData(2*streamReadBatch)); held > most {
		t.Errorf("the stalled stream read %d bytes of output from storage, want at most %d", held, most)
	}

	p.finish(t)
	chunks, fin := collectOutput(t, ch)
	checkStream(t, chunks, fin, 1, 2*streamReadBatch)
	e.repo.set(func(r *commandRepo) {
		if most := buffer/2 + len(chunkData(2*streamReadBatch)); slices.Max(r.readBytes) > most {
			t.Errorf("a read of storage returned %d bytes of output, want at most %d", slices.Max(r.readBytes), most)
		}
	})
}

// TestCommandService_Output_DroppedWhileSending: a stream whose receiver
// stops taking while it sends a live event lets go of the event when the
// hub drops the subscriber: the event's Hold is left with the references of
// the chunks handed to the receiver only, and nothing keeps the rest of its
// chunks. When the receiver reads again it gets every chunk once, the rest
// of the event from storage.
func TestCommandService_Output_DroppedWhileSending(t *testing.T) {
	e := newCommandEnv(t)
	e.hub.passOnly = true
	p := newProducer(t, e)
	ctx := NewContextWithCaller(t.Context(), &Caller{Key: readerKey})
	ch, err := TransientOutputAs(ctx, e.svc, p.id, 0, func(e OutputEvent) OutputEvent { return e })
	if err != nil {
		t.Fatal(err)
	}
	topic := CommandTopic(p.id)
	waitFor(t, "the stream to subscribe", func() bool { return e.hub.subscribers(topic) == 1 })

	// One event of n chunks, which the stream takes and starts sending.
	const n = 20
	chunks := make([]OutputChunk, n)
	for i := range chunks {
		seq := int64(i + 1)
		chunks[i] = OutputChunk{CommandID: p.id, Seq: seq, Stream: Stdout, Data: chunkData(seq), At: time.Now().UTC()}
	}
	hold := newHold(nil)
	e.hub.Publish(topic, Event{Kind: EventOutput, CommandID: p.id, Chunks: chunks, UpTo: n, Hold: hold})
	hold.Release() // the publisher's reference
	waitFor(t, "the receiver's channel to fill", func() bool { return len(ch) == cap(ch) })
	// Stored only now, so that the stream cannot have read it from storage.
	if err := e.repo.AppendOutput(ctx, Lease{}, chunks); err != nil {
		t.Fatal(err)
	}

	// More events than the subscriber's buffer has room for.
	p.mu.Lock()
	p.seq = n
	p.mu.Unlock()
	p.mustEmit(t, streamBuffer+1)
	waitFor(t, "the hub to drop the stream", func() bool { return e.hub.dropCount() > 0 })
	waitFor(t, "the stream to let go of the event", func() bool { return hold.refs.Load() == int32(len(ch)) })

	p.finish(t)
	got, fin := collectOutput(t, ch)
	checkStream(t, got, fin, 1, n+streamBuffer+1)
}

// TestCommandService_Output_UpToOnly: an output event from another process
// carries only UpTo; the stream reads the chunks from storage at once (not
// at its next periodic re-check).
func TestCommandService_Output_UpToOnly(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	p.mustEmit(t, 1)
	ch := output(t, t.Context(), e, p.id, 0)
	if ev := <-ch; ev.Chunk == nil || ev.Chunk.Seq != 1 {
		t.Fatalf("first event = %+v", ev)
	}
	if err := p.emit(5, true); err != nil {
		t.Fatal(err)
	}
	published := time.Now()
	e.hub.Publish(CommandTopic(p.id), Event{Kind: EventOutput, CommandID: p.id, UpTo: 6})
	for want := int64(2); want <= 6; want++ {
		select {
		case ev := <-ch:
			if ev.Chunk == nil || ev.Chunk.Seq != want {
				t.Fatalf("event = %+v, want chunk %d", ev, want)
			}
		case <-time.After(time.Until(published.Add(streamRecheck - 500*time.Millisecond))):
			t.Fatalf("chunk %d did not arrive before the stream's periodic re-check", want)
		}
	}
	p.finish(t)
	rest, fin := collectOutput(t, ch)
	if len(rest) != 0 || fin == nil || fin.LastSeq != 6 {
		t.Errorf("after the UpTo event: %d more chunks, finished %+v", len(rest), fin)
	}
}

// TestCommandService_Output_QueuedThenCancelled: a stream opened on a queued
// command ends with the command when it is cancelled.
func TestCommandService_Output_QueuedThenCancelled(t *testing.T) {
	e := newCommandEnv(t)
	c := mustExecute(t, e, ls())
	ch := output(t, t.Context(), e, c.ID, 0)
	waitFor(t, "the stream to subscribe", func() bool { return e.hub.subscribers(CommandTopic(c.ID)) == 1 })
	if _, err := e.svc.Cancel(keyContext(t, writerKey), c.ID); err != nil {
		t.Fatal(err)
	}
	chunks, fin := collectOutput(t, ch)
	if len(chunks) != 0 || fin == nil || fin.Status != CommandCancelled {
		t.Errorf("got %d chunks, finished %+v", len(chunks), fin)
	}
}

// TestCommandService_Output_Dispatched streams a command the dispatcher
// runs, from before it starts to its end, and checks the stream against
// storage.
func TestCommandService_Output_Dispatched(t *testing.T) {
	e := newCommandEnv(t)
	steps := lines(Stdout, 500)
	for i := 0; i < len(steps); i += 7 {
		steps[i].stream = Stderr
		steps[i].pause = 200 * time.Microsecond
	}
	e.exec.program("run", execScript{steps: steps, result: ExecResult{ExitCode: 2}})
	c := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"run", "t"}})
	ch := output(t, t.Context(), e, c.ID, 0)
	e.startDispatcher(t, testDispatcherConfig())
	chunks, fin := collectOutput(t, ch)
	stored := e.repo.stored(c.ID)
	if !slices.EqualFunc(chunks, stored, sameChunk) {
		t.Fatalf("stream %s differs from storage %s", summarize(seqs(chunks)), summarize(seqs(stored)))
	}
	if fin == nil || fin.Status != CommandFailed || fin.LastSeq != stored[len(stored)-1].Seq {
		t.Errorf("finished %+v", fin)
	}
}

// TestCommandService_Output_ExpiredLease: a stream of a command whose
// process died ends when its lease expires.
func TestCommandService_Output_ExpiredLease(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	p.mustEmit(t, 3)
	ch := output(t, t.Context(), e, p.id, 0)
	e.repo.set(func(r *commandRepo) { r.cmds[p.id].LeaseExpiresAt = new(time.Now().Add(-time.Second)) })
	cfg := testDispatcherConfig()
	cfg.LeaseTTL = 150 * time.Millisecond
	e.startDispatcher(t, cfg)
	chunks, fin := collectOutput(t, ch)
	if len(chunks) != 3 || fin == nil || fin.Status != CommandInterrupted {
		t.Errorf("got %d chunks, finished %+v", len(chunks), fin)
	}
}

func sameChunk(a, b OutputChunk) bool {
	return a.CommandID == b.CommandID && a.Seq == b.Seq && a.Stream == b.Stream && a.Data == b.Data && a.At.Equal(b.At)
}

// TestCommandService_Output_ManySubscribers: 50 streams on one running
// command, opened at different moments, all get the same complete output.
func TestCommandService_Output_ManySubscribers(t *testing.T) {
	e := newCommandEnv(t)
	gate := make(chan struct{})
	steps := lines(Stdout, 1000)
	second := lines(Stderr, 1000)
	second[0].wait = gate
	for i := 0; i < len(second); i += 25 {
		second[i].pause = 100 * time.Microsecond
	}
	e.exec.program("run", execScript{steps: append(steps, second...)})
	e.startDispatcher(t, testDispatcherConfig())
	c := mustExecute(t, e, ExecuteCommand{ProjectID: "web", Argv: []string{"run", "t"}})
	waitFor(t, "the first half to be stored", func() bool {
		return strings.Contains(joined(e.repo.stored(c.ID), ""), numberedLine(1000))
	})

	const n = 50
	results := make([][]OutputChunk, n)
	fins := make([]*Command, n)
	var wg sync.WaitGroup
	for i := range n {
		if i == n/2 {
			close(gate) // the rest subscribe while output flows
		}
		ch := output(t, t.Context(), e, c.ID, 0)
		wg.Go(func() {
			var err error
			if results[i], fins[i], err = readOutput(ch); err != nil {
				t.Errorf("subscriber %d: %v", i, err)
			}
		})
		time.Sleep(50 * time.Microsecond) // spread the subscriptions out
	}
	wg.Wait()
	stored := e.repo.stored(c.ID)
	if got := joined(stored, Stderr); !strings.HasSuffix(got, numberedLine(1000)) {
		t.Fatalf("stored output incomplete: %d chunks", len(stored))
	}
	for i := range n {
		if !slices.EqualFunc(results[i], stored, sameChunk) {
			t.Errorf("subscriber %d got %s, storage has %s", i, summarize(seqs(results[i])), summarize(seqs(stored)))
		}
		if fins[i] == nil || fins[i].Status != CommandSucceeded || fins[i].LastSeq != stored[len(stored)-1].Seq {
			t.Errorf("subscriber %d finished with %+v", i, fins[i])
		}
	}
}

// TestCommandService_Output_ContextEnds: cancelling a stream's context
// closes its channel and ends its goroutine and hub subscription.
func TestCommandService_Output_ContextEnds(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	p.mustEmit(t, 3)
	before := runtime.NumGoroutine()

	const n = 20
	ctx, cancel := context.WithCancel(t.Context())
	var chans []<-chan OutputEvent
	for range n {
		chans = append(chans, output(t, ctx, e, p.id, 0))
	}
	// One reader reads, the others never do.
	for range 3 {
		<-chans[0]
	}
	waitFor(t, "every stream to subscribe", func() bool { return e.hub.subscribers(CommandTopic(p.id)) == n })
	cancel()
	for i, ch := range chans {
		timeout := time.After(10 * time.Second)
	drain:
		for {
			select {
			case _, ok := <-ch:
				if !ok {
					break drain
				}
			case <-timeout:
				t.Fatalf("stream %d did not close after its context ended", i)
			}
		}
	}
	waitFor(t, "the subscriptions to close", func() bool { return e.hub.subscribers(CommandTopic(p.id)) == 0 })
	waitFor(t, "the stream goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

// TestCommandService_Output_TruncationGap: when output passes the cap, the
// live tail must not overtake head chunks that are still being stored.
func TestCommandService_Output_TruncationGap(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e) // only for the RUNNING command
	// MaxChunk 100 keeps each 100-byte line a chunk of its own: the lines
	// that wait together are not merged, so the head ends exactly at the cap.
	rec := newRecorder(Lease{CommandID: p.id, Owner: producerOwner}, OutputConfig{Cap: 1000, TailWindow: 500, MaxChunk: 100, FlushDelay: time.Hour}, recorderDeps{repo: e.repo, hub: e.hub, log: discardLogger, now: time.Now})
	ch := output(t, t.Context(), e, p.id, 0)
	waitFor(t, "the stream to subscribe", func() bool { return e.hub.subscribers(CommandTopic(p.id)) == 1 })

	entered, open := blockAppends(e.repo)
	defer open()
	w := rec.writer(Stdout)
	write(t, w, strings.Repeat("a", 99)+"\n") // seq 1: head, being stored
	<-entered
	for range 4 {
		write(t, w, strings.Repeat("b", 99)+"\n") // seqs 2-5: head, waiting
	}
	write(t, w, strings.Repeat("c", 99)+"\n") // seq 6: past the head, tail
	open()
	tot := closeRecorder(t, rec)
	c, err := e.repo.FinishCommand(context.Background(), Lease{CommandID: p.id, Owner: producerOwner},
		Finish{Status: CommandSucceeded, FinishedAt: time.Now().UTC(), LastSeq: tot.lastSeq, OutputBytes: tot.total, Truncated: tot.truncated}, nil)
	if err != nil {
		t.Fatal(err)
	}
	publishStatus(context.Background(), e.hub, nil, c)
	chunks, fin := collectOutput(t, ch)
	if got, want := seqs(e.repo.stored(p.id)), seqRange(1, 6); !slices.Equal(got, want) || tot.truncated {
		t.Fatalf("storage holds seqs %v (truncated %v), want %v", got, tot.truncated, want)
	}
	if got, want := seqs(chunks), seqs(e.repo.stored(p.id)); !slices.Equal(got, want) {
		t.Errorf("live stream got seqs %v, storage holds %v", got, want)
	}
	if fin == nil {
		t.Error("no finished event")
	}
}

// TestCommandService_Output_InterruptedResume: a client that read part of
// an interrupted command's output reconnects after the command ended.
func TestCommandService_Output_InterruptedResume(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	p.mustEmit(t, 3)
	expired, err := e.repo.ExpireLeases(context.Background(), time.Now().Add(2*time.Hour), nil)
	if err != nil || len(expired) != 1 {
		t.Fatalf("ExpireLeases = %v, %v", expired, err)
	}
	// ExpireLeases takes LastSeq and OutputBytes from the stored output.
	if want := int64(len(joined(e.repo.stored(p.id), ""))); expired[0].LastSeq != 3 || expired[0].OutputBytes != want {
		t.Fatalf("interrupted command has LastSeq %d OutputBytes %d, want 3 and %d", expired[0].LastSeq, expired[0].OutputBytes, want)
	}
	ch, err := e.svc.Output(keyContext(t, readerKey), p.id, 2)
	if err != nil {
		t.Fatalf("resuming after seq 2 of an interrupted command: %v", err)
	}
	chunks, fin := collectOutput(t, ch)
	checkStream(t, chunks, fin, 3, 3)
}

// TestCommandService_Output_MissedSignal: when another process stores
// output and ends the command but its signals never arrive, the stream
// still finds everything at its periodic re-check.
func TestCommandService_Output_MissedSignal(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	p.mustEmit(t, 2)
	ch := output(t, t.Context(), e, p.id, 0)
	for range 2 {
		<-ch
	}
	if err := p.emit(3, true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.repo.FinishCommand(context.Background(), Lease{CommandID: p.id, Owner: producerOwner},
		Finish{Status: CommandSucceeded, ExitCode: ptr(0), FinishedAt: time.Now().UTC(), LastSeq: 5}, nil); err != nil {
		t.Fatal(err)
	}
	chunks, fin := collectOutput(t, ch)
	checkStream(t, chunks, fin, 3, 5)
}

// TestCommandService_Output_StorageFails: a stream whose storage reads
// fail ends (without the finished event) rather than hanging.
func TestCommandService_Output_StorageFails(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	p.mustEmit(t, 2)
	e.repo.set(func(r *commandRepo) { r.readErr = errors.New("db down") })
	chunks, fin := collectOutput(t, output(t, t.Context(), e, p.id, 0))
	if len(chunks) != 0 || fin != nil {
		t.Errorf("got %d chunks and finished %v from failing storage", len(chunks), fin)
	}
	if n := e.hub.subscribers(CommandTopic(p.id)); n != 0 {
		t.Errorf("%d subscriptions left open", n)
	}
}

// TestCommandService_Output_Gaps: where stored output skips seqs (chunks
// that were lost, or the dropped middle of a truncated command), the stream
// says so with a gap just before the next chunk, whether it reads storage
// or follows live.
func TestCommandService_Output_Gaps(t *testing.T) {
	e := newCommandEnv(t)
	p := newProducer(t, e)
	events := func(ch <-chan OutputEvent) []string {
		var out []string
		for ev := range ch {
			switch {
			case ev.Gap != nil:
				out = append(out, fmt.Sprintf("gap %d-%d", ev.Gap.AfterSeq, ev.Gap.NextSeq))
			case ev.Chunk != nil:
				out = append(out, fmt.Sprintf("chunk %d", ev.Chunk.Seq))
			case ev.Finished != nil:
				out = append(out, "finished")
			}
		}
		return out
	}
	live := output(t, t.Context(), e, p.id, 0)
	waitFor(t, "the stream to subscribe", func() bool { return e.hub.subscribers(CommandTopic(p.id)) == 1 })
	p.mustEmit(t, 2)
	p.mu.Lock()
	p.seq += 2 // seqs 3 and 4 never stored
	p.mu.Unlock()
	p.mustEmit(t, 2)
	p.mu.Lock()
	p.seq += 2 // seqs 7 and 8, the last, lost too
	p.mu.Unlock()
	p.finish(t)

	want := []string{"chunk 1", "chunk 2", "gap 2-5", "chunk 5", "chunk 6", "gap 6-9", "finished"}
	if got := events(live); !slices.Equal(got, want) {
		t.Errorf("live: %v, want %v", got, want)
	}
	if got := events(output(t, t.Context(), e, p.id, 0)); !slices.Equal(got, want) {
		t.Errorf("from storage: %v, want %v", got, want)
	}
	if got, want := events(output(t, t.Context(), e, p.id, 3)), []string{"gap 3-5", "chunk 5", "chunk 6", "gap 6-9", "finished"}; !slices.Equal(got, want) {
		t.Errorf("after seq 3: %v, want %v", got, want)
	}
}
