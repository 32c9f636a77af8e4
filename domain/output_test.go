package domain

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

// newTestRecorder returns a recorder over fresh fakes.
func newTestRecorder(tb testing.TB, cfg OutputConfig) (*recorder, *commandRepo, *fakeHub) {
	tb.Helper()
	repo, hub := newCommandRepo(), newFakeHub()
	rec := newRecorder(NewID(time.Now()), cfg, repo, hub, nil, discardLogger, time.Now)
	return rec, repo, hub
}

type recorderTotals struct {
	total, lastStored int64
	truncated         bool
}

// closeRecorder closes rec, failing the test if that takes unreasonably
// long.
func closeRecorder(tb testing.TB, rec *recorder) recorderTotals {
	tb.Helper()
	done := make(chan recorderTotals, 1)
	go func() {
		var t recorderTotals
		t.total, t.lastStored, t.truncated = rec.close()
		done <- t
	}()
	select {
	case t := <-done:
		return t
	case <-time.After(30 * time.Second):
		tb.Fatal("recorder.close did not return")
		return recorderTotals{}
	}
}

// blockAppends makes AppendOutput wait until open is called; entered is
// closed when the first call arrives.
func blockAppends(repo *commandRepo) (entered <-chan struct{}, open func()) {
	in, gate := make(chan struct{}), make(chan struct{})
	var once sync.Once
	repo.set(func(r *commandRepo) {
		r.appendHook = func([]OutputChunk) error {
			once.Do(func() { close(in) })
			<-gate
			return nil
		}
	})
	var openOnce sync.Once
	return in, func() { openOnce.Do(func() { close(gate) }) }
}

func write(tb testing.TB, w io.Writer, s string) {
	tb.Helper()
	if n, err := io.WriteString(w, s); err != nil || n != len(s) {
		tb.Fatalf("Write = %d, %v", n, err)
	}
}

// checkChunks checks the invariants of every stored chunk: seqs 1…N
// without gaps, valid UTF-8, at most maxChunk bytes, the command's ID.
func checkChunks(tb testing.TB, chunks []OutputChunk, id string, maxChunk int) {
	tb.Helper()
	for i, c := range chunks {
		if c.Seq != int64(i+1) {
			tb.Fatalf("chunk %d has seq %d, want %d", i, c.Seq, i+1)
		}
		if !utf8.ValidString(c.Data) {
			tb.Fatalf("chunk %d is not valid UTF-8: %q", c.Seq, c.Data)
		}
		if len(c.Data) == 0 || len(c.Data) > maxChunk {
			tb.Fatalf("chunk %d has %d bytes, want 1…%d", c.Seq, len(c.Data), maxChunk)
		}
		if c.CommandID != id || (c.Stream != Stdout && c.Stream != Stderr) || c.At.IsZero() {
			tb.Fatalf("chunk %d = %+v", c.Seq, c)
		}
	}
}

func TestOutputConfig_WithDefaults(t *testing.T) {
	for _, tt := range []struct {
		name     string
		in, want OutputConfig
	}{
		{"Zero", OutputConfig{}, DefaultOutputConfig},
		{"CapOnly", OutputConfig{Cap: 1000}, OutputConfig{Cap: 1000, TailWindow: 500, MaxChunk: DefaultOutputConfig.MaxChunk,
			FlushDelay: DefaultOutputConfig.FlushDelay, MaxPending: DefaultOutputConfig.MaxPending}},
		{"TailWiderThanCap", OutputConfig{Cap: 1000, TailWindow: 5000}, OutputConfig{Cap: 1000, TailWindow: 1000,
			MaxChunk: DefaultOutputConfig.MaxChunk, FlushDelay: DefaultOutputConfig.FlushDelay, MaxPending: DefaultOutputConfig.MaxPending}},
		{"TinyChunk", OutputConfig{MaxChunk: 1}, OutputConfig{Cap: DefaultOutputConfig.Cap, TailWindow: DefaultOutputConfig.TailWindow,
			MaxChunk: utf8.UTFMax, FlushDelay: DefaultOutputConfig.FlushDelay, MaxPending: DefaultOutputConfig.MaxPending}},
		{"All", OutputConfig{Cap: 9, TailWindow: 3, MaxChunk: 7, FlushDelay: time.Second, MaxPending: 11},
			OutputConfig{Cap: 9, TailWindow: 3, MaxChunk: 7, FlushDelay: time.Second, MaxPending: 11}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.withDefaults(); got != tt.want {
				t.Errorf("withDefaults(%+v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

// TestRecorder_Lines writes 10,000 numbered lines through a fake executor
// and the dispatcher: stored complete, in order, and never a split line.
func TestRecorder_Lines(t *testing.T) {
	e := newCommandEnv(t)
	const n = 10_000
	e.exec.program("count", execScript{steps: lines(Stdout, n)})
	c := e.queue(t, &Command{ProjectID: "web", Argv: []string{"count", "run"}})
	e.startDispatcher(t, testDispatcherConfig())
	fin := e.waitFinal(t, c.ID)
	if fin.Status != CommandSucceeded {
		t.Fatalf("status = %s (%s)", fin.Status, fin.Reason)
	}
	stored := e.repo.stored(c.ID)
	checkChunks(t, stored, c.ID, DefaultOutputConfig.MaxChunk)
	var want strings.Builder
	for i := range n {
		want.WriteString(numberedLine(i + 1))
	}
	if got := joined(stored, Stdout); got != want.String() {
		t.Fatalf("stored output differs: %d bytes, want %d", len(got), want.Len())
	}
	for _, ch := range stored {
		if !strings.HasSuffix(ch.Data, "\n") {
			t.Fatalf("chunk %d splits a line: %q", ch.Seq, ch.Data)
		}
	}
	if fin.LastSeq != stored[len(stored)-1].Seq || fin.OutputBytes != int64(want.Len()) || fin.Truncated {
		t.Errorf("final LastSeq=%d OutputBytes=%d Truncated=%v; want %d, %d, false",
			fin.LastSeq, fin.OutputBytes, fin.Truncated, stored[len(stored)-1].Seq, want.Len())
	}
	e.repo.checkOrdering(t)
}

// TestRecorder_ConcurrentStreams writes stdout and stderr from two
// goroutines, as an executor may: each stream stays whole and in order,
// and both share one seq sequence.
func TestRecorder_ConcurrentStreams(t *testing.T) {
	rec, repo, _ := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour, MaxChunk: 256})
	const n = 3000
	var wg sync.WaitGroup
	for _, s := range []Stream{Stdout, Stderr} {
		wg.Go(func() {
			w := rec.writer(s)
			for i := range n {
				_, _ = fmt.Fprintf(w, "%s %05d\n", s, i)
			}
		})
	}
	wg.Wait()
	tot := closeRecorder(t, rec)
	stored := repo.stored(rec.cmdID)
	checkChunks(t, stored, rec.cmdID, 256)
	for _, s := range []Stream{Stdout, Stderr} {
		var want strings.Builder
		for i := range n {
			fmt.Fprintf(&want, "%s %05d\n", s, i)
		}
		if got := joined(stored, s); got != want.String() {
			t.Errorf("%s differs (%d bytes, want %d)", s, len(got), want.Len())
		}
	}
	for _, ch := range stored {
		if !strings.HasPrefix(ch.Data, string(ch.Stream)+" ") {
			t.Fatalf("chunk %d on %s holds %q", ch.Seq, ch.Stream, ch.Data)
		}
	}
	if tot.lastStored != int64(len(stored)) || tot.truncated || tot.total != int64(len(joined(stored, ""))) {
		t.Errorf("totals = %+v with %d chunks stored", tot, len(stored))
	}
}

func TestRecorder_StreamsApart(t *testing.T) {
	rec, repo, _ := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour})
	out, errw := rec.writer(Stdout), rec.writer(Stderr)
	write(t, out, "out1 ")
	write(t, errw, "err1\n")
	write(t, out, "rest\nout2")
	write(t, errw, "err2 partial")
	closeRecorder(t, rec)
	var got []string
	for _, c := range repo.stored(rec.cmdID) {
		got = append(got, fmt.Sprintf("%d %s %q", c.Seq, c.Stream, c.Data))
	}
	want := []string{
		`1 STDERR "err1\n"`,
		`2 STDOUT "out1 rest\n"`,
		`3 STDOUT "out2"`,
		`4 STDERR "err2 partial"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("chunks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRecorder_PartialLineFlushed checks that a line without its newline
// (a prompt, a progress bar) is sent after FlushDelay, before the command
// ends.
func TestRecorder_PartialLineFlushed(t *testing.T) {
	rec, repo, _ := newTestRecorder(t, OutputConfig{FlushDelay: 5 * time.Millisecond})
	write(t, rec.writer(Stdout), "Continue? [y/N] ")
	waitFor(t, "the partial line to be stored", func() bool { return len(repo.stored(rec.cmdID)) == 1 })
	write(t, rec.writer(Stdout), "y\n")
	tot := closeRecorder(t, rec)
	got := repo.stored(rec.cmdID)
	if len(got) != 2 || got[0].Data != "Continue? [y/N] " || got[1].Data != "y\n" {
		t.Errorf("chunks = %+v", got)
	}
	if tot.total != 18 || tot.lastStored != 2 {
		t.Errorf("totals = %+v", tot)
	}
}

// TestRecorder_SplitRune writes a multi-byte character in two writes with
// the flush timer firing in between: the character is never split.
func TestRecorder_SplitRune(t *testing.T) {
	for _, tt := range []struct{ name, first, second, flushed, rest string }{
		{"TwoOfThree", "x\xe2\x82", "\xac\n", "x", "€\n"},
		{"OneOfThree", "x\xe2", "\x82\xac\n", "x", "€\n"},
		{"ThreeOfFour", "ab\xf0\x9f\x8e", "\x89!\n", "ab", "🎉!\n"},
		{"OneOfTwo", "é\xc3", "\xa9\n", "é", "é\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec, repo, _ := newTestRecorder(t, OutputConfig{FlushDelay: time.Millisecond})
			write(t, rec.writer(Stdout), tt.first)
			waitFor(t, "the partial line to be stored", func() bool { return len(repo.stored(rec.cmdID)) == 1 })
			write(t, rec.writer(Stdout), tt.second)
			closeRecorder(t, rec)
			got := repo.stored(rec.cmdID)
			checkChunks(t, got, rec.cmdID, DefaultOutputConfig.MaxChunk)
			if len(got) != 2 || got[0].Data != tt.flushed || got[1].Data != tt.rest {
				t.Errorf("chunks = %q, want %q then %q", []string{got[0].Data, joined(got[1:], "")}, tt.flushed, tt.rest)
			}
		})
	}
	t.Run("IncompleteAtEnd", func(t *testing.T) {
		// The process ends mid-character: the bytes are kept as they are.
		rec, repo, _ := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour})
		write(t, rec.writer(Stdout), "end\xe2\x82")
		tot := closeRecorder(t, rec)
		if got := joined(repo.stored(rec.cmdID), ""); got != "end\xe2\x82" || tot.total != 5 {
			t.Errorf("stored %q, total %d", got, tot.total)
		}
	})
}

// utf8Text is full of multi-byte characters, with and without newlines.
var utf8Text = strings.Repeat("a€b🎉c日本語é\n", 40) + strings.Repeat("€", 300) + "\n" + strings.Repeat("🎉x", 200)

// TestRecorder_UTF8AndMaxChunk writes text full of multi-byte characters in
// pieces of every size: no chunk is larger than MaxChunk, none splits a
// character, and nothing is lost or reordered.
func TestRecorder_UTF8AndMaxChunk(t *testing.T) {
	testUTF8Pieces(t, []time.Duration{time.Hour})
}

// TestRecorder_UTF8AndFlushTimer is TestRecorder_UTF8AndMaxChunk with the
// flush timer firing between writes.
func TestRecorder_UTF8AndFlushTimer(t *testing.T) {
	testUTF8Pieces(t, []time.Duration{time.Microsecond})
}

func testUTF8Pieces(t *testing.T, flushes []time.Duration) {
	text := utf8Text
	for _, maxChunk := range []int{4, 5, 6, 7, 16, 100} {
		for _, piece := range []int{1, 2, 3, 5, 7, 64, len(text)} {
			for _, flush := range flushes {
				name := fmt.Sprintf("MaxChunk%d/Piece%d/Flush%s", maxChunk, piece, flush)
				t.Run(name, func(t *testing.T) {
					rec, repo, _ := newTestRecorder(t, OutputConfig{MaxChunk: maxChunk, FlushDelay: flush})
					w := rec.writer(Stdout)
					for i := 0; i < len(text); i += piece {
						write(t, w, text[i:min(i+piece, len(text))])
					}
					tot := closeRecorder(t, rec)
					stored := repo.stored(rec.cmdID)
					checkChunks(t, stored, rec.cmdID, maxChunk)
					if got := joined(stored, ""); got != text {
						t.Fatalf("stored text differs:\n%q\nwant\n%q", got, text)
					}
					if tot.total != int64(len(text)) || tot.truncated || tot.lastStored != int64(len(stored)) {
						t.Errorf("totals = %+v", tot)
					}
				})
			}
		}
	}
}

// flushNow does what the flush timer does when it fires.
func flushNow(rec *recorder, s Stream) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.flushPartial(s, false)
}

// TestRecorder_FlushKeepsIncompleteRune fires the flush timer by hand
// while a stream's unfinished line ends inside a character: the
// character's first bytes wait for the rest.
func TestRecorder_FlushKeepsIncompleteRune(t *testing.T) {
	for _, tt := range []struct {
		name, first, second string
		bug                 bool
	}{
		{"OKOneByteAlone", "abc\n\xe2", "\x82\xac\n", false},
		{"OKAfterText", "x\xe2\x82", "\xac\n", false},
		{"OKFourAfterText", "x\xf0\x9f\x8e", "\x89\n", false},
		{"TwoBytesAlone", "abc\n\xe2\x82", "\xac\n", true},
		{"ThreeOfFourAlone", "abc\n\xf0\x9f\x8e", "\x89\n", true},
		{"TwoOfFourAlone", "\xf0\x9f", "\x8e\x89\n", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.bug {
			}
			rec, repo, _ := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour})
			write(t, rec.writer(Stdout), tt.first)
			flushNow(rec, Stdout)
			write(t, rec.writer(Stdout), tt.second)
			flushNow(rec, Stdout)
			closeRecorder(t, rec)
			stored := repo.stored(rec.cmdID)
			checkChunks(t, stored, rec.cmdID, DefaultOutputConfig.MaxChunk)
			if got := joined(stored, ""); got != tt.first+tt.second {
				t.Errorf("stored %q, want %q", got, tt.first+tt.second)
			}
		})
	}
}

// TestRecorder_CutsAtNewline checks that a long write is cut at the last
// newline within MaxChunk where there is one.
func TestRecorder_CutsAtNewline(t *testing.T) {
	rec, repo, _ := newTestRecorder(t, OutputConfig{MaxChunk: 10, FlushDelay: time.Hour})
	write(t, rec.writer(Stdout), "abc\ndefghijklmnopq\nrs\n")
	closeRecorder(t, rec)
	var got []string
	for _, c := range repo.stored(rec.cmdID) {
		got = append(got, c.Data)
	}
	if want := []string{"abc\n", "defghijklm", "nopq\nrs\n"}; !slices.Equal(got, want) {
		t.Errorf("chunks = %q, want %q", got, want)
	}
}

// capLines returns n lines of size bytes each, numbered.
func capLines(n, size int) []string {
	out := make([]string, n)
	for i := range out {
		head := fmt.Sprintf("%07d ", i+1)
		out[i] = head + strings.Repeat("x", size-len(head)-1) + "\n"
	}
	return out
}

// TestRecorder_Cap writes 1 MiB with a 64 KiB cap while storage is stuck:
// the writes finish anyway, and the head and the last TailWindow bytes are
// kept.
func TestRecorder_Cap(t *testing.T) {
	const capBytes, tail = 64 << 10, 16 << 10
	rec, repo, hub := newTestRecorder(t, OutputConfig{Cap: capBytes, TailWindow: tail, FlushDelay: time.Hour})
	_, open := blockAppends(repo)
	defer open()
	all := capLines(8192, 128) // 1 MiB
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := rec.writer(Stdout)
		for _, l := range all {
			_, _ = io.WriteString(w, l)
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writes past the cap blocked while storage was stuck")
	}
	// Past the cap the tail goes out live at once, before it is stored.
	if n := len(hub.published(CommandTopic(rec.cmdID))); n == 0 {
		t.Error("no live output published while storage was stuck")
	}
	open()
	tot := closeRecorder(t, rec)

	stored := repo.stored(rec.cmdID)
	if !tot.truncated || tot.total != 1<<20 || tot.lastStored != 8192 {
		t.Errorf("totals = %+v, want truncated, 1 MiB, last seq 8192", tot)
	}
	if last := stored[len(stored)-1]; last.Seq != tot.lastStored {
		t.Errorf("last stored seq %d, close reported %d", last.Seq, tot.lastStored)
	}
	// Head: seqs 1…h, the first lines; tail: the last lines, up to seq 8192.
	h := 0
	for h < len(stored) && stored[h].Seq == int64(h+1) {
		h++
	}
	head, tailChunks := stored[:h], stored[h:]
	if got, want := joined(head, ""), strings.Join(all[:h], ""); got != want {
		t.Errorf("head is not the first %d lines", h)
	}
	if n := len(joined(head, "")); n > capBytes-tail || n < capBytes-tail-128 {
		t.Errorf("head has %d bytes, want about %d", n, capBytes-tail)
	}
	if got, want := joined(tailChunks, ""), strings.Join(all[len(all)-len(tailChunks):], ""); got != want {
		t.Errorf("tail is not the last %d lines", len(tailChunks))
	}
	for i, c := range tailChunks {
		if want := int64(8192 - len(tailChunks) + i + 1); c.Seq != want {
			t.Fatalf("tail chunk %d has seq %d, want %d", i, c.Seq, want)
		}
	}
	if n := len(joined(tailChunks, "")); n < tail {
		t.Errorf("tail has %d bytes, want at least TailWindow %d", n, tail)
	}
	if n := len(joined(stored, "")); n > capBytes {
		t.Errorf("stored %d bytes, more than the cap %d", n, capBytes)
	}
}

// TestRecorder_CapStrict checks the doc "Cap is the most output bytes
// stored per command" when chunks do not divide the window evenly.
func TestRecorder_CapStrict(t *testing.T) {
	const capBytes, tail = 64 << 10, 16 << 10
	rec, repo, _ := newTestRecorder(t, OutputConfig{Cap: capBytes, TailWindow: tail, FlushDelay: time.Hour})
	for _, l := range capLines(300, 3000) {
		write(t, rec.writer(Stdout), l)
	}
	closeRecorder(t, rec)
	if n := len(joined(repo.stored(rec.cmdID), "")); n > capBytes {
		t.Errorf("stored %d bytes, more than the cap %d", n, capBytes)
	}
}

// TestRecorder_UnderCapNotTruncated: output that stays under the cap is
// stored whole and not marked truncated.
func TestRecorder_UnderCapNotTruncated(t *testing.T) {
	rec, repo, _ := newTestRecorder(t, OutputConfig{Cap: 64 << 10, TailWindow: 16 << 10, FlushDelay: time.Hour})
	all := capLines(400, 128) // 50 KiB
	for _, l := range all {
		write(t, rec.writer(Stdout), l)
	}
	tot := closeRecorder(t, rec)
	if got := joined(repo.stored(rec.cmdID), ""); got != strings.Join(all, "") {
		t.Fatalf("output under the cap was not stored whole (%d bytes)", len(got))
	}
	if tot.truncated {
		t.Error("output under the cap marked truncated")
	}
}

// TestRecorder_BackPressure: while storage is slow, writes beyond
// MaxPending wait; nothing is lost.
func TestRecorder_BackPressure(t *testing.T) {
	const maxPending, lineLen, n = 1024, 64, 1000
	rec, repo, _ := newTestRecorder(t, OutputConfig{MaxPending: maxPending, FlushDelay: time.Hour})
	entered, open := blockAppends(repo)
	defer open()
	all := capLines(n, lineLen)
	var accepted atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		w := rec.writer(Stdout)
		for _, l := range all {
			_, _ = io.WriteString(w, l)
			accepted.Add(int64(len(l)))
		}
	}()
	<-entered
	waitFor(t, "pending output to pass MaxPending", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.pendingLen > maxPending
	})
	// The store loop holds one batch (at most MaxPending plus a line), and
	// at most MaxPending plus a line waits: the writer cannot get further.
	if got, bound := accepted.Load(), int64(2*(maxPending+lineLen)); got > bound {
		t.Errorf("%d bytes accepted while storage was stuck, want at most %d", got, bound)
	}
	select {
	case <-done:
		t.Fatal("all writes returned while storage was stuck")
	default:
	}
	open()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("writes did not resume after storage caught up")
	}
	tot := closeRecorder(t, rec)
	stored := repo.stored(rec.cmdID)
	checkChunks(t, stored, rec.cmdID, DefaultOutputConfig.MaxChunk)
	if got := joined(stored, ""); got != strings.Join(all, "") || tot.truncated {
		t.Errorf("output lost under back-pressure: %d of %d bytes stored, truncated=%v", len(got), n*lineLen, tot.truncated)
	}
}

// TestRecorder_PublishesAfterStoring: subscribers never see a chunk that
// storage does not have yet.
func TestRecorder_PublishesAfterStoring(t *testing.T) {
	rec, repo, hub := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour})
	entered, open := blockAppends(repo)
	defer open()
	for i := range 10 {
		write(t, rec.writer(Stdout), numberedLine(i))
	}
	<-entered
	if ev := hub.published(CommandTopic(rec.cmdID)); len(ev) != 0 {
		t.Fatalf("%d events published before storing finished", len(ev))
	}
	open()
	tot := closeRecorder(t, rec)
	var seen int64
	for _, ev := range hub.published(CommandTopic(rec.cmdID)) {
		if ev.Kind != EventOutput || ev.CommandID != rec.cmdID || len(ev.Chunks) == 0 {
			t.Fatalf("event = %+v", ev)
		}
		if ev.Chunks[0].Seq != seen+1 || ev.UpTo != ev.Chunks[len(ev.Chunks)-1].Seq {
			t.Fatalf("event chunks %v UpTo %d after seq %d", seqs(ev.Chunks), ev.UpTo, seen)
		}
		seen = ev.UpTo
	}
	if seen != tot.lastStored || seen != 10 {
		t.Errorf("published up to %d, stored up to %d, want 10", seen, tot.lastStored)
	}
}

func TestRecorder_StorageFails(t *testing.T) {
	t.Run("OKTransient", func(t *testing.T) {
		rec, repo, _ := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour})
		var calls atomic.Int32
		repo.set(func(r *commandRepo) {
			r.appendHook = func([]OutputChunk) error {
				if calls.Add(1) <= 2 {
					return errors.New("connection reset")
				}
				return nil
			}
		})
		for i := range 5 {
			write(t, rec.writer(Stdout), numberedLine(i))
		}
		tot := closeRecorder(t, rec)
		if got := len(repo.stored(rec.cmdID)); got == 0 || tot.truncated || tot.lastStored != 5 {
			t.Errorf("after two failed tries: %d chunks stored, totals %+v", got, tot)
		}
	})
	t.Run("ErrPermanent", func(t *testing.T) {
		rec, repo, hub := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour})
		repo.set(func(r *commandRepo) { r.appendHook = func([]OutputChunk) error { return errors.New("disk full") } })
		for i := range 5 {
			write(t, rec.writer(Stdout), numberedLine(i))
		}
		tot := closeRecorder(t, rec)
		if !tot.truncated || tot.lastStored != 0 || tot.total != 5*int64(len(numberedLine(0))) {
			t.Errorf("totals = %+v, want truncated, nothing stored, every byte counted", tot)
		}
		for _, ev := range hub.published(CommandTopic(rec.cmdID)) {
			if ev.UpTo > 0 {
				t.Errorf("published %+v though nothing was stored", ev)
			}
		}
	})
}
