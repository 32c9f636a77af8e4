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
	rec := newRecorder(Lease{CommandID: NewID(time.Now())}, cfg, recorderDeps{repo: repo, hub: hub, log: discardLogger, now: time.Now})
	return rec, repo, hub
}

type recorderTotals = recorded

// closeRecorder closes rec, failing the test if that takes unreasonably
// long.
func closeRecorder(tb testing.TB, rec *recorder) recorderTotals {
	tb.Helper()
	done := make(chan recorderTotals, 1)
	go func() {
		done <- rec.close(time.Time{})
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
		// MaxChunk never exceeds the tail window, or a chunk would be dropped whole.
		{"CapOnly", OutputConfig{Cap: 1000}, OutputConfig{Cap: 1000, TailWindow: 500, MaxChunk: 500,
			FlushDelay: DefaultOutputConfig.FlushDelay, MaxPending: DefaultOutputConfig.MaxPending, BusyHold: DefaultOutputConfig.BusyHold, HoldFor: DefaultOutputConfig.HoldFor}},
		{"TailWiderThanCap", OutputConfig{Cap: 1000, TailWindow: 5000}, OutputConfig{Cap: 1000, TailWindow: 1000,
			MaxChunk: 1000, FlushDelay: DefaultOutputConfig.FlushDelay, MaxPending: DefaultOutputConfig.MaxPending, BusyHold: DefaultOutputConfig.BusyHold, HoldFor: DefaultOutputConfig.HoldFor}},
		{"TinyChunk", OutputConfig{MaxChunk: 1}, OutputConfig{Cap: DefaultOutputConfig.Cap, TailWindow: DefaultOutputConfig.TailWindow,
			MaxChunk: utf8.UTFMax, FlushDelay: DefaultOutputConfig.FlushDelay, MaxPending: DefaultOutputConfig.MaxPending, BusyHold: DefaultOutputConfig.BusyHold, HoldFor: DefaultOutputConfig.HoldFor}},
		{"All", OutputConfig{Cap: 90, TailWindow: 30, MaxChunk: 7, FlushDelay: time.Second, MaxPending: 11, BusyHold: 5 * time.Millisecond},
			OutputConfig{Cap: 90, TailWindow: 30, MaxChunk: 7, FlushDelay: time.Second, MaxPending: 11, BusyHold: 5 * time.Millisecond, HoldFor: DefaultOutputConfig.HoldFor}},
		{"NoBusyHold", OutputConfig{BusyHold: -1}, OutputConfig{Cap: DefaultOutputConfig.Cap, TailWindow: DefaultOutputConfig.TailWindow,
			MaxChunk: DefaultOutputConfig.MaxChunk, FlushDelay: DefaultOutputConfig.FlushDelay, MaxPending: DefaultOutputConfig.MaxPending, HoldFor: DefaultOutputConfig.HoldFor}},
		{"ChunkWiderThanTail", OutputConfig{Cap: 9, TailWindow: 3, MaxChunk: 7},
			OutputConfig{Cap: 9, TailWindow: 3, MaxChunk: utf8.UTFMax, FlushDelay: DefaultOutputConfig.FlushDelay, MaxPending: DefaultOutputConfig.MaxPending, BusyHold: DefaultOutputConfig.BusyHold, HoldFor: DefaultOutputConfig.HoldFor}},
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
	if tot.lastSeq != int64(len(stored)) || tot.truncated || tot.total != int64(len(joined(stored, ""))) {
		t.Errorf("totals = %+v with %d chunks stored", tot, len(stored))
	}
}

// piece is what one stream emitted: a line, a cut of a long line, or an
// unfinished line sent on its own.
type piece struct {
	stream Stream
	data   string
}

// checkPieces checks that chunks are the pieces in the order written, each
// chunk one piece or several consecutive pieces of one stream merged (the
// store loop merges the pieces that wait together), and never more than
// maxChunk bytes.
func checkPieces(tb testing.TB, chunks []OutputChunk, pieces []piece, maxChunk int) {
	tb.Helper()
	describe := func() string {
		var b strings.Builder
		for _, c := range chunks {
			fmt.Fprintf(&b, "\n  %d %s %q", c.Seq, c.Stream, c.Data)
		}
		b.WriteString("\nwant, merged or not:")
		for _, p := range pieces {
			fmt.Fprintf(&b, "\n  %s %q", p.stream, p.data)
		}
		return b.String()
	}
	i := 0
	for _, c := range chunks {
		if len(c.Data) > maxChunk {
			tb.Fatalf("chunk %d has %d bytes, more than %d:%s", c.Seq, len(c.Data), maxChunk, describe())
		}
		rest := c.Data
		for rest != "" && i < len(pieces) && pieces[i].stream == c.Stream && strings.HasPrefix(rest, pieces[i].data) {
			rest = rest[len(pieces[i].data):]
			i++
		}
		if rest != "" || c.Data == "" {
			tb.Fatalf("chunk %d is not whole pieces of %s in the order written:%s", c.Seq, c.Stream, describe())
		}
	}
	if i != len(pieces) {
		tb.Fatalf("%d of %d pieces stored:%s", i, len(pieces), describe())
	}
}

// TestRecorder_StreamsApart: each stream's unfinished line waits for its
// own newline, pieces of different streams never share a chunk, and the
// pieces keep the order they were written in.
func TestRecorder_StreamsApart(t *testing.T) {
	rec, repo, _ := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour})
	out, errw := rec.writer(Stdout), rec.writer(Stderr)
	write(t, out, "out1 ")
	write(t, errw, "err1\n")
	write(t, out, "rest\nout2")
	write(t, errw, "err2 partial")
	tot := closeRecorder(t, rec)
	stored := repo.stored(rec.cmdID)
	checkChunks(t, stored, rec.cmdID, DefaultOutputConfig.MaxChunk)
	// "out1 rest\n" and "out2" may be stored apart or, when they wait
	// together, as one chunk.
	checkPieces(t, stored, []piece{
		{Stderr, "err1\n"}, {Stdout, "out1 rest\n"}, {Stdout, "out2"}, {Stderr, "err2 partial"},
	}, DefaultOutputConfig.MaxChunk)
	if tot.lastSeq != stored[len(stored)-1].Seq || tot.total != 31 || tot.truncated {
		t.Errorf("totals = %+v with %d chunks stored", tot, len(stored))
	}
}

// TestRecorder_MergesWaitingPieces: the pieces that wait while storage is
// busy are stored in one batch, neighbours of one stream merged into chunks
// of up to MaxChunk, in the order written.
func TestRecorder_MergesWaitingPieces(t *testing.T) {
	rec, repo, hub := newTestRecorder(t, OutputConfig{MaxChunk: 24, FlushDelay: time.Hour, BusyHold: -1})
	entered, open := blockAppends(repo)
	defer open()
	out, errw := rec.writer(Stdout), rec.writer(Stderr)
	write(t, out, "o1 3456\n")
	<-entered // "o1" is being stored; the rest waits
	for _, w := range []struct {
		w io.Writer
		s string
	}{
		{out, "o2 3456\n"}, {out, "o3 3456\n"}, {out, "o4 3456\n"}, {out, "o5 3456\n"},
		{errw, "e1\n"}, {errw, "e2 45\n"},
		{out, "o6\n"},
	} {
		write(t, w.w, w.s)
	}
	open()
	tot := closeRecorder(t, rec)
	stored := repo.stored(rec.cmdID)
	checkChunks(t, stored, rec.cmdID, 24)
	var got []string
	for _, c := range stored {
		got = append(got, fmt.Sprintf("%d %s %q", c.Seq, c.Stream, c.Data))
	}
	want := []string{
		`1 STDOUT "o1 3456\n"`,
		`2 STDOUT "o2 3456\no3 3456\no4 3456\n"`, // 24 bytes: a fourth line would not fit
		`3 STDOUT "o5 3456\n"`,
		`4 STDERR "e1\ne2 45\n"`,
		`5 STDOUT "o6\n"`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("chunks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if tot.lastSeq != 5 || tot.total != 52 || tot.truncated {
		t.Errorf("totals = %+v, want last seq 5, 52 bytes", tot)
	}
	// One event per batch, each after its batch was stored.
	var evSeqs [][]int64
	for _, ev := range hub.published(CommandTopic(rec.cmdID)) {
		evSeqs = append(evSeqs, seqs(ev.Chunks))
		if ev.UpTo != ev.Chunks[len(ev.Chunks)-1].Seq {
			t.Errorf("event with chunks %v has UpTo %d", seqs(ev.Chunks), ev.UpTo)
		}
	}
	if want := [][]int64{{1}, {2, 3, 4, 5}}; !slices.EqualFunc(evSeqs, want, slices.Equal) {
		t.Errorf("events carried seqs %v, want %v", evSeqs, want)
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
	if tot.total != 18 || tot.lastSeq != 2 {
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
					if tot.total != int64(len(text)) || tot.truncated || tot.lastSeq != int64(len(stored)) {
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
// character's first bytes wait for the rest. Storage is stuck meanwhile, so
// the pieces handed to the store loop can be checked one by one (stored,
// the pieces that waited together are merged, which would hide a split).
func TestRecorder_FlushKeepsIncompleteRune(t *testing.T) {
	for _, tt := range []struct{ name, first, second string }{
		{"OneByteAlone", "abc\n\xe2", "\x82\xac\n"},
		{"AfterText", "x\xe2\x82", "\xac\n"},
		{"FourAfterText", "x\xf0\x9f\x8e", "\x89\n"},
		{"TwoBytesAlone", "abc\n\xe2\x82", "\xac\n"},
		{"ThreeOfFourAlone", "abc\n\xf0\x9f\x8e", "\x89\n"},
		{"TwoOfFourAlone", "\xf0\x9f", "\x8e\x89\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec, repo, _ := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour})
			entered, open := blockAppends(repo)
			defer open()
			write(t, rec.writer(Stdout), "seed\n")
			<-entered // the store loop is stuck with "seed\n"
			write(t, rec.writer(Stdout), tt.first)
			flushNow(rec, Stdout)
			write(t, rec.writer(Stdout), tt.second)
			flushNow(rec, Stdout)
			rec.mu.Lock()
			var pieces []string
			for _, seg := range rec.pending {
				pieces = append(pieces, string(seg.data))
			}
			rec.mu.Unlock()
			if got := strings.Join(pieces, ""); got != tt.first+tt.second {
				t.Errorf("pieces %q, want %q", pieces, tt.first+tt.second)
			}
			for _, p := range pieces {
				if !utf8.ValidString(p) {
					t.Errorf("piece %q of %q splits a character", p, pieces)
				}
			}
			open()
			closeRecorder(t, rec)
			stored := repo.stored(rec.cmdID)
			checkChunks(t, stored, rec.cmdID, DefaultOutputConfig.MaxChunk)
			if got := joined(stored, ""); got != "seed\n"+tt.first+tt.second {
				t.Errorf("stored %q, want %q", got, "seed\n"+tt.first+tt.second)
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

// TestRecorder_BusyStreamKeepsChunksFull checks that when a write outgrows
// MaxChunk, the lines left after the full-size pieces wait for the next
// write instead of going out as a sliver of their own.
func TestRecorder_BusyStreamKeepsChunksFull(t *testing.T) {
	rec, repo, _ := newTestRecorder(t, OutputConfig{MaxChunk: 10, FlushDelay: time.Hour, BusyHold: time.Hour})
	out := rec.writer(Stdout)
	write(t, out, "aaaa\nbbbb\ncc\n")
	waitFor(t, "the full piece to be stored", func() bool { return len(repo.stored(rec.cmdID)) == 1 })
	write(t, out, "dd\n")
	closeRecorder(t, rec)
	var got []string
	for _, c := range repo.stored(rec.cmdID) {
		got = append(got, c.Data)
	}
	if want := []string{"aaaa\nbbbb\n", "cc\ndd\n"}; !slices.Equal(got, want) {
		t.Errorf("chunks = %q, want %q", got, want)
	}
}

// TestRecorder_KeepsDeadlines checks that writes which keep coming do not
// push back the flush: a progress bar redrawn every millisecond without a
// newline shows up within FlushDelay, and a busy stream's lines within
// BusyHold, before the writes stop.
func TestRecorder_KeepsDeadlines(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  OutputConfig
		text string
	}{
		{"PartialLine", OutputConfig{FlushDelay: 20 * time.Millisecond, BusyHold: time.Hour}, "\r42%"},
		{"BusyLines", OutputConfig{FlushDelay: time.Hour, BusyHold: 20 * time.Millisecond}, "line\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec, repo, _ := newTestRecorder(t, tt.cfg)
			out := rec.writer(Stdout)
			// The first writes find the stream idle and may go out at once.
			for range 10 {
				write(t, out, tt.text)
			}
			before := len(repo.stored(rec.cmdID))
			stored := false
			for end := time.Now().Add(2 * time.Second); time.Now().Before(end) && !stored; {
				write(t, out, tt.text)
				time.Sleep(500 * time.Microsecond)
				stored = len(repo.stored(rec.cmdID)) > before
			}
			closeRecorder(t, rec)
			if !stored {
				t.Errorf("nothing was sent in 2 s of writes every 0.5 ms")
			}
		})
	}
}

// TestJoin checks that pieces next to each other within one block are
// joined without a copy, and that anything else, including a piece that
// merely starts where another's capacity ends, is copied.
func TestJoin(t *testing.T) {
	block := []byte("0123456789")
	if j, inPlace := join(block[0:3], block[3:7]); string(j) != "0123456" || &j[0] != &block[0] || !inPlace {
		t.Errorf("neighbours in a block: %q, copied %v, in place %v", j, &j[0] != &block[0], inPlace)
	}
	for _, tt := range []struct {
		name string
		a, b []byte
	}{
		{"apart", block[0:3], block[4:6]},
		{"other arrays", []byte("012"), []byte("34")},
		{"capacity ends where b starts", block[0:3:3], block[3:5]},
	} {
		j, inPlace := join(tt.a, tt.b)
		if string(j) != string(tt.a)+string(tt.b) || &j[0] == &tt.a[0] || inPlace {
			t.Errorf("%s: %q, copied %v, in place %v", tt.name, j, &j[0] != &tt.a[0], inPlace)
		}
	}
	if string(block) != "0123456789" {
		t.Errorf("join wrote into the block: %q", block)
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

// checkCapped checks what was kept of output out that passed the cap: the
// head, seqs 1…h, is the start of out and fills Cap-TailWindow less at most
// one chunk; the tail is the end of out, in consecutive seqs up to the last
// one, and fills TailWindow less at most one chunk; nothing more than Cap
// is stored, and the command is marked truncated. It returns the head's
// last seq.
func checkCapped(tb testing.TB, stored []OutputChunk, out string, cfg OutputConfig, tot recorderTotals) (headEnd int64) {
	tb.Helper()
	cfg = cfg.withDefaults()
	if !tot.truncated || tot.total != int64(len(out)) || tot.lastSeq != stored[len(stored)-1].Seq {
		tb.Errorf("totals = %+v, want truncated, %d bytes, last seq %d", tot, len(out), stored[len(stored)-1].Seq)
	}
	h := 0
	for h < len(stored) && stored[h].Seq == int64(h+1) {
		h++
	}
	head, tail := stored[:h], stored[h:]
	if len(tail) == 0 {
		tb.Fatalf("no tail stored after the %d head chunks", h)
	}
	for i, c := range stored {
		if len(c.Data) == 0 || len(c.Data) > cfg.MaxChunk || (i > h && c.Seq != tail[0].Seq+int64(i-h)) {
			tb.Fatalf("chunk %d (seq %d) has %d bytes (at most %d), head seqs 1…%d, tail from %d",
				i, c.Seq, len(c.Data), cfg.MaxChunk, h, tail[0].Seq)
		}
	}
	headOut, tailOut := joined(head, ""), joined(tail, "")
	if !strings.HasPrefix(out, headOut) {
		tb.Errorf("head (%d chunks, %d bytes) is not the start of the output", h, len(headOut))
	}
	if room := cfg.Cap - cfg.TailWindow; int64(len(headOut)) > room || int64(len(headOut)) <= room-int64(cfg.MaxChunk) {
		tb.Errorf("head has %d bytes, want at most %d and more than %d", len(headOut), room, room-int64(cfg.MaxChunk))
	}
	if !strings.HasSuffix(out, tailOut) {
		tb.Errorf("tail (%d chunks, %d bytes) is not the end of the output", len(tail), len(tailOut))
	}
	if n := int64(len(tailOut)); n > cfg.TailWindow || n <= cfg.TailWindow-int64(cfg.MaxChunk) {
		tb.Errorf("tail has %d bytes, want at most TailWindow %d and more than %d", n, cfg.TailWindow, cfg.TailWindow-int64(cfg.MaxChunk))
	}
	if tail[0].Seq <= int64(h+1) {
		tb.Errorf("tail starts at seq %d right after the head (seq %d), though output was dropped", tail[0].Seq, h)
	}
	if n := len(headOut) + len(tailOut); int64(n) > cfg.Cap {
		tb.Errorf("stored %d bytes, more than the cap %d", n, cfg.Cap)
	}
	return int64(h)
}

// TestRecorder_Cap writes 1 MiB with a 64 KiB cap while storage is stuck:
// the writes finish anyway, and the head and the last TailWindow bytes are
// kept. The tail goes out live only once the head before it is stored.
func TestRecorder_Cap(t *testing.T) {
	const capBytes, tail = 64 << 10, 16 << 10
	for _, tt := range []struct {
		name     string
		maxChunk int
	}{
		// Lines of 128 bytes never merge: a chunk per line.
		{"ChunkPerLine", 128},
		// The lines that wait while storage is stuck merge into 4 KiB chunks.
		{"Merged", 4 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := OutputConfig{Cap: capBytes, TailWindow: tail, MaxChunk: tt.maxChunk, FlushDelay: time.Hour}
			rec, repo, hub := newTestRecorder(t, cfg)
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
			// The first batch is being stored: nothing, not even the tail,
			// goes out before it is.
			if ev := hub.published(CommandTopic(rec.cmdID)); len(ev) != 0 {
				t.Errorf("%d events published while storage was stuck", len(ev))
			}
			open()
			tot := closeRecorder(t, rec)

			stored := repo.stored(rec.cmdID)
			out := strings.Join(all, "")
			headEnd := checkCapped(t, stored, out, cfg, tot)
			for _, c := range stored {
				if !strings.HasSuffix(c.Data, "\n") {
					t.Fatalf("chunk %d splits a line: ends %q", c.Seq, c.Data[max(0, len(c.Data)-10):])
				}
			}
			if tt.maxChunk == 128 {
				// The head holds exactly Cap-TailWindow bytes of lines, the
				// tail exactly TailWindow.
				if headEnd != (capBytes-tail)/128 || tot.lastSeq != 8192 || len(stored) != capBytes/128 {
					t.Errorf("head ends at seq %d, last seq %d, %d chunks stored; want %d, 8192, %d",
						headEnd, tot.lastSeq, len(stored), (capBytes-tail)/128, capBytes/128)
				}
			}
			// The live tail was published after the whole head was stored.
			var live int
			for _, ev := range hub.published(CommandTopic(rec.cmdID)) {
				if len(ev.Chunks) == 0 || ev.Chunks[0].Seq <= ev.UpTo {
					continue // stored chunks
				}
				live++
				if ev.UpTo != headEnd || (live == 1 && ev.Chunks[0].Seq != headEnd+1) {
					t.Errorf("live event %d with seqs %d… has UpTo %d, want the head stored up to %d first (and the first live chunk %d)",
						live, ev.Chunks[0].Seq, ev.UpTo, headEnd, headEnd+1)
				}
			}
			if live == 0 {
				t.Error("the tail was never published live")
			}
		})
	}
}

// TestRecorder_CapStrict checks the doc "Cap is the most output bytes
// stored per command" when chunks do not divide the window evenly.
func TestRecorder_CapStrict(t *testing.T) {
	const capBytes, tail = 64 << 10, 16 << 10
	// 3000-byte lines: a chunk per line, or two lines merged into one.
	for _, maxChunk := range []int{3000, 7000} {
		t.Run(fmt.Sprintf("MaxChunk%d", maxChunk), func(t *testing.T) {
			cfg := OutputConfig{Cap: capBytes, TailWindow: tail, MaxChunk: maxChunk, FlushDelay: time.Hour}
			rec, repo, _ := newTestRecorder(t, cfg)
			all := capLines(300, 3000)
			for _, l := range all {
				write(t, rec.writer(Stdout), l)
			}
			tot := closeRecorder(t, rec)
			checkCapped(t, repo.stored(rec.cmdID), strings.Join(all, ""), cfg, tot)
		})
	}
}

// TestRecorder_UnderCapNotTruncated: output that stays under the cap is
// stored whole and not marked truncated, though it outgrew the head and
// partly went to the tail window.
func TestRecorder_UnderCapNotTruncated(t *testing.T) {
	// 50 KiB of 128-byte lines under a 64 KiB cap with a 48 KiB head: with
	// chunks of up to 4 KiB the head holds more than 44 KiB, and the rest
	// fits the 16 KiB tail window.
	for _, maxChunk := range []int{128, 4 << 10} {
		t.Run(fmt.Sprintf("MaxChunk%d", maxChunk), func(t *testing.T) {
			rec, repo, _ := newTestRecorder(t, OutputConfig{Cap: 64 << 10, TailWindow: 16 << 10, MaxChunk: maxChunk, FlushDelay: time.Hour})
			all := capLines(400, 128) // 50 KiB
			for _, l := range all {
				write(t, rec.writer(Stdout), l)
			}
			tot := closeRecorder(t, rec)
			stored := repo.stored(rec.cmdID)
			checkChunks(t, stored, rec.cmdID, maxChunk)
			if got := joined(stored, ""); got != strings.Join(all, "") {
				t.Fatalf("output under the cap was not stored whole (%d bytes)", len(got))
			}
			if tot.truncated || tot.total != 400*128 || tot.lastSeq != stored[len(stored)-1].Seq {
				t.Errorf("totals = %+v, want not truncated, %d bytes, last seq %d", tot, 400*128, stored[len(stored)-1].Seq)
			}
		})
	}
}

// TestRecorder_SmallCapKeepsHead: output under a small cap is stored whole
// even when the lines that waited for storage would merge into a chunk
// larger than the head's room (rdev serve --output-cap 65536: a 32 KiB head
// and tail next to the 64 KiB default MaxChunk).
func TestRecorder_SmallCapKeepsHead(t *testing.T) {
	rec, repo, _ := newTestRecorder(t, OutputConfig{Cap: 64 << 10, FlushDelay: time.Hour, BusyHold: -1})
	entered, open := blockAppends(repo)
	defer open()
	all := capLines(321, 128) // 40 KiB and a line
	write(t, rec.writer(Stdout), all[0])
	<-entered // the other lines wait together
	for _, l := range all[1:] {
		write(t, rec.writer(Stdout), l)
	}
	open()
	tot := closeRecorder(t, rec)
	stored := repo.stored(rec.cmdID)
	checkChunks(t, stored, rec.cmdID, DefaultOutputConfig.MaxChunk)
	if got := joined(stored, ""); got != strings.Join(all, "") || tot.truncated {
		t.Errorf("stored %d of %d bytes under a %d-byte cap, truncated %v", len(got), len(strings.Join(all, "")), 64<<10, tot.truncated)
	}
	if head := joined(stored[:2], ""); len(head) != 32<<10 {
		t.Errorf("the head holds %d bytes, want the first 32 KiB (its room) in seqs 1 and 2", len(head))
	}
}

// TestRecorder_SmallCapKeepsTail: past a small cap the end of the output
// is kept, even when the lines that waited for storage would merge into a
// chunk larger than the tail window.
func TestRecorder_SmallCapKeepsTail(t *testing.T) {
	rec, repo, _ := newTestRecorder(t, OutputConfig{Cap: 64 << 10, FlushDelay: time.Hour, BusyHold: -1})
	entered, open := blockAppends(repo)
	defer open()
	all := capLines(577, 128) // the 32 KiB head, then 40 KiB and a line
	write(t, rec.writer(Stdout), all[0])
	<-entered // the other lines wait together
	for _, l := range all[1:] {
		write(t, rec.writer(Stdout), l)
	}
	open()
	tot := closeRecorder(t, rec)
	stored := repo.stored(rec.cmdID)
	out := joined(stored, "")
	if !tot.truncated || len(out) > 64<<10 || !strings.HasSuffix(out, all[len(all)-1]) || tot.lastSeq != stored[len(stored)-1].Seq {
		t.Errorf("stored %d bytes in %d chunks, ending %q; totals %+v; want at most the cap, truncated, ending with the last line %q",
			len(out), len(stored), out[max(0, len(out)-20):], tot, all[len(all)-1])
	}
}

// TestRecorder_BackPressure: while storage is slow, writes beyond
// MaxPending wait; nothing is lost.
func TestRecorder_BackPressure(t *testing.T) {
	const maxPending, lineLen, n = 1024, 64, 1000
	rec, repo, _ := newTestRecorder(t, OutputConfig{MaxPending: maxPending, FlushDelay: time.Hour, BusyHold: -1})
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
	var want strings.Builder
	for i := range 10 {
		write(t, rec.writer(Stdout), numberedLine(i))
		want.WriteString(numberedLine(i))
	}
	<-entered
	if ev := hub.published(CommandTopic(rec.cmdID)); len(ev) != 0 {
		t.Fatalf("%d events published before storing finished", len(ev))
	}
	open()
	tot := closeRecorder(t, rec)
	stored := repo.stored(rec.cmdID)
	checkChunks(t, stored, rec.cmdID, DefaultOutputConfig.MaxChunk)
	// The first batch went to storage at once; every line written while it
	// was stuck waited and was merged into one chunk.
	if got := joined(stored, Stdout); got != want.String() || len(stored) > 2 {
		t.Fatalf("stored %d chunks %q, want at most 2 holding %q", len(stored), got, want.String())
	}
	var seen int64
	var published []OutputChunk
	for _, ev := range hub.published(CommandTopic(rec.cmdID)) {
		if ev.Kind != EventOutput || ev.CommandID != rec.cmdID || len(ev.Chunks) == 0 {
			t.Fatalf("event = %+v", ev)
		}
		if ev.Chunks[0].Seq != seen+1 || ev.UpTo != ev.Chunks[len(ev.Chunks)-1].Seq {
			t.Fatalf("event chunks %v UpTo %d after seq %d", seqs(ev.Chunks), ev.UpTo, seen)
		}
		seen = ev.UpTo
		published = append(published, ev.Chunks...)
	}
	if !slices.Equal(published, stored) {
		t.Errorf("published chunks %v, stored %v", seqs(published), seqs(stored))
	}
	if last := stored[len(stored)-1].Seq; seen != tot.lastSeq || seen != last {
		t.Errorf("published up to %d, close reported %d, stored up to %d", seen, tot.lastSeq, last)
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
		var want strings.Builder
		for i := range 5 {
			write(t, rec.writer(Stdout), numberedLine(i))
			want.WriteString(numberedLine(i))
		}
		tot := closeRecorder(t, rec)
		stored := repo.stored(rec.cmdID)
		if len(stored) == 0 || joined(stored, "") != want.String() || tot.truncated || tot.lastSeq != stored[len(stored)-1].Seq {
			t.Errorf("after two failed tries: %d chunks stored (%q), totals %+v", len(stored), joined(stored, ""), tot)
		}
		checkChunks(t, stored, rec.cmdID, DefaultOutputConfig.MaxChunk)
		if n := calls.Load(); n < 3 {
			t.Errorf("AppendOutput called %d times, want the two failures retried", n)
		}
	})
	t.Run("HeldThenLost", func(t *testing.T) {
		rec, repo, hub := newTestRecorder(t, OutputConfig{FlushDelay: time.Hour, HoldFor: 200 * time.Millisecond})
		var calls atomic.Int32
		repo.set(func(r *commandRepo) {
			r.appendHook = func([]OutputChunk) error { calls.Add(1); return errors.New("disk full") }
		})
		for i := range 5 {
			write(t, rec.writer(Stdout), numberedLine(i))
		}
		tot := closeRecorder(t, rec)
		want := 5 * int64(len(numberedLine(0)))
		if tot.truncated || tot.lastSeq < 1 || len(repo.stored(rec.cmdID)) != 0 || tot.total != want || tot.lostBytes != want {
			t.Errorf("totals = %+v, %d chunks stored; want nothing stored, every byte counted and lost, not truncated, lastSeq that of the last chunk", tot, len(repo.stored(rec.cmdID)))
		}
		if n := calls.Load(); n < 3 {
			t.Errorf("AppendOutput called %d times: the output was not held and tried again", n)
		}
		for _, ev := range hub.published(CommandTopic(rec.cmdID)) {
			if len(ev.Chunks) > 0 || ev.UpTo > 0 {
				t.Errorf("published %+v though nothing was stored", ev)
			}
		}
	})
	// A truncated command's tail is sent live and stored when the command
	// ends; if storage refuses it then, it is lost, and the command's
	// lastSeq still covers every chunk live subscribers were sent.
	t.Run("TailLost", func(t *testing.T) {
		rec, repo, hub := newTestRecorder(t, OutputConfig{Cap: 1000, TailWindow: 500, MaxChunk: 100, FlushDelay: time.Hour, BusyHold: -1, HoldFor: 100 * time.Millisecond})
		var refuse atomic.Bool
		repo.set(func(r *commandRepo) {
			r.appendHook = func([]OutputChunk) error {
				if refuse.Load() {
					return errors.New("disk full")
				}
				return nil
			}
		})
		for i := range 20 {
			write(t, rec.writer(Stdout), strings.Repeat(string(rune('a'+i)), 99)+"\n")
		}
		waitFor(t, "the head to be stored", func() bool { return len(repo.stored(rec.cmdID)) == 5 })
		refuse.Store(true)
		tot := closeRecorder(t, rec)
		var liveMax int64
		for _, ev := range hub.published(CommandTopic(rec.cmdID)) {
			for _, c := range ev.Chunks {
				liveMax = max(liveMax, c.Seq)
			}
		}
		if liveMax != 20 || tot.lastSeq != 20 || tot.lostBytes == 0 || !tot.truncated {
			t.Errorf("sent live up to seq %d, totals %+v: want lastSeq 20 covering all sent, the tail counted lost", liveMax, tot)
		}
	})
	t.Run("LeaseLost", func(t *testing.T) {
		repo, hub := newCommandRepo(), newFakeHub()
		var lost atomic.Int32
		lease := Lease{CommandID: NewID(time.Now()), Owner: "me", Epoch: 1} // no such command: not held
		rec := newRecorder(lease, OutputConfig{FlushDelay: time.Hour}, recorderDeps{
			repo: repo, hub: hub, log: discardLogger, now: time.Now, onLeaseLost: func() { lost.Add(1) },
		})
		for i := range 3 {
			write(t, rec.writer(Stdout), numberedLine(i))
			waitFor(t, "the write to be tried", func() bool { return lost.Load() == 1 })
		}
		tot := closeRecorder(t, rec)
		if !tot.leaseLost || tot.lastSeq != 0 || lost.Load() != 1 || len(repo.stored(lease.CommandID)) != 0 {
			t.Errorf("totals %+v, told %d times, stored %d: want the lease found lost once and nothing stored", tot, lost.Load(), len(repo.stored(lease.CommandID)))
		}
	})

}
