package bunstore

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

// appendData appends one chunk per string and returns their spans.
func appendData(tb testing.TB, g *segments, data ...string) []segmentSpan {
	tb.Helper()
	chunks := make([]domain.OutputChunk, len(data))
	for i, d := range data {
		chunks[i] = domain.OutputChunk{Data: d}
	}
	var got []segmentSpan
	insert := func(spans []segmentSpan) error {
		got = spans
		storedRows.Lock()
		defer storedRows.Unlock()
		storedRows.spans[g.dir] = append(storedRows.spans[g.dir], spans...)
		return nil
	}
	if err := g.append(chunks, insert, lastRow(g)); err != nil {
		tb.Fatalf("append: %v", err)
	}
	return got
}

// storedRows plays the database of appendData: the spans stored, by
// segment directory, so that segments reopened on a directory find them.
var storedRows = struct {
	sync.Mutex
	spans map[string][]segmentSpan
}{spans: map[string][]segmentSpan{}}

// lastRow returns the lastStored of g's rows in storedRows.
func lastRow(g *segments) lastStored {
	return func() (segmentSpan, bool, error) {
		storedRows.Lock()
		defer storedRows.Unlock()
		rows := storedRows.spans[g.dir]
		if len(rows) == 0 {
			return segmentSpan{}, false, nil
		}
		return rows[len(rows)-1], true, nil
	}
}

func readSpans(tb testing.TB, g *segments, spans []segmentSpan) []string {
	tb.Helper()
	var out []string
	for _, sp := range spans {
		d, err := g.read(sp)
		if err != nil {
			tb.Fatalf("read %+v: %v", sp, err)
		}
		out = append(out, d)
	}
	return out
}

func closeSegments(tb testing.TB, g *segments) {
	tb.Helper()
	tb.Cleanup(func() {
		if err := g.close(); err != nil {
			tb.Errorf("close: %v", err)
		}
	})
}

func TestSegments(t *testing.T) {
	t.Run("AppendRead", func(t *testing.T) {
		g := newSegments(filepath.Join(t.TempDir(), "out"))
		closeSegments(t, g)
		data := []string{"one\n", "", "two\x00\xff\n", strings.Repeat("x", 100<<10)}
		spans := appendData(t, g, data...)
		spans = append(spans, appendData(t, g, "three")...)
		want := []segmentSpan{{1, 0, 4}, {1, 4, 0}, {1, 4, 6}, {1, 10, 100 << 10}, {1, 10 + 100<<10, 5}}
		if diff := cmp.Diff(want, spans, cmp.AllowUnexported(segmentSpan{})); diff != "" {
			t.Errorf("spans (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(append(data, "three"), readSpans(t, g, spans)); diff != "" {
			t.Errorf("read (-want +got):\n%s", diff)
		}
	})

	// Past its limit a segment is left for a new one; spans in both read.
	t.Run("Rolls", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		g := newSegments(dir)
		g.limit = 10
		closeSegments(t, g)
		var spans []segmentSpan
		var want []string
		for _, d := range []string{"12345", "678901", "ab", "cdefghijklmn", "o"} {
			spans = append(spans, appendData(t, g, d)...)
			want = append(want, d)
		}
		var segs []int
		for _, sp := range spans {
			segs = append(segs, sp.segment)
		}
		// A batch goes whole into the segment it starts in.
		if diff := cmp.Diff([]int{1, 1, 2, 2, 3}, segs); diff != "" {
			t.Errorf("segments (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, readSpans(t, g, spans)); diff != "" {
			t.Errorf("read (-want +got):\n%s", diff)
		}
		names, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range names {
			names[i] = filepath.Base(n)
		}
		if diff := cmp.Diff([]string{"000000000001.out", "000000000002.out", "000000000003.out"}, names); diff != "" {
			t.Errorf("files (-want +got):\n%s", diff)
		}
	})

	// A store opened on the directory again appends to its last segment,
	// after whatever is there, even bytes no row refers to (those of a
	// transaction that rolled back, or a crashed write).
	t.Run("Reopen", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		g := newSegments(dir)
		first := appendData(t, g, "before")
		if err := g.close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "000000000007.out"), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a segment"), 0o600); err != nil {
			t.Fatal(err)
		}
		g = newSegments(dir)
		closeSegments(t, g)
		spans := appendData(t, g, "after")
		if want := (segmentSpan{7, 4, 5}); spans[0] != want {
			t.Errorf("span %+v, want %+v", spans[0], want)
		}
		if diff := cmp.Diff([]string{"before", "after"}, readSpans(t, g, append(first, spans...))); diff != "" {
			t.Errorf("read (-want +got):\n%s", diff)
		}
	})

	// When the rows cannot be inserted, no byte is written.
	t.Run("InsertFails", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		g := newSegments(dir)
		closeSegments(t, g)
		failed := errors.New("constraint")
		err := g.append([]domain.OutputChunk{{Data: "lost"}}, func([]segmentSpan) error { return failed }, lastRow(g))
		if !errors.Is(err, failed) {
			t.Fatalf("append: %v, want the insert's error", err)
		}
		spans := appendData(t, g, "kept")
		if want := (segmentSpan{1, 0, 4}); spans[0] != want {
			t.Errorf("span %+v, want %+v: the failed batch wrote bytes", spans[0], want)
		}
	})

	// A segment cut short (its end lost to a power failure the database's
	// commit survived) reads as an error naming it, not as short data.
	t.Run("Short", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		g := newSegments(dir)
		closeSegments(t, g)
		spans := appendData(t, g, "0123456789")
		if err := os.Truncate(filepath.Join(dir, "000000000001.out"), 4); err != nil {
			t.Fatal(err)
		}
		_, err := g.read(spans[0])
		if err == nil || !strings.Contains(err.Error(), "000000000001.out ends before") {
			t.Errorf("read: %v, want an error naming the short segment", err)
		}
	})

	// After a power failure that cut a segment short under rows the
	// database kept, or lost its file, the next process appends to a new
	// segment: the old rows must not come to point at new output.
	for _, tt := range []struct {
		name   string
		damage func(segment string) error
	}{
		{"ShortThenAppend", func(segment string) error { return os.Truncate(segment, 4) }},
		{"MissingThenAppend", os.Remove},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			g := newSegments(dir)
			old := appendData(t, g, "0123456789")
			if err := g.close(); err != nil {
				t.Fatal(err)
			}
			if err := tt.damage(filepath.Join(dir, "000000000001.out")); err != nil {
				t.Fatal(err)
			}
			g = newSegments(dir)
			closeSegments(t, g)
			spans := appendData(t, g, "new output")
			if want := (segmentSpan{2, 0, 10}); spans[0] != want {
				t.Errorf("span %+v, want %+v: a new segment", spans[0], want)
			}
			if d, err := g.read(old[0]); err == nil {
				t.Errorf("the damaged row reads %q, want an error", d)
			}
			if diff := cmp.Diff([]string{"new output"}, readSpans(t, g, spans)); diff != "" {
				t.Errorf("read (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("ErrDirectory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		g := newSegments(filepath.Join(file, "out"))
		closeSegments(t, g)
		err := g.append([]domain.OutputChunk{{Data: "x"}}, func([]segmentSpan) error {
			t.Error("insert called without a segment to write to")
			return nil
		}, lastRow(g))
		if err == nil {
			t.Error("append under a file: no error")
		}
	})
}
