package bunstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/rdev-hq/rdev/domain"
)

// segmentLimit is the size past which appends move on to a new segment file.
// A segment holds the output of many commands, in the order it was stored.
const segmentLimit = 256 << 20

// segmentSuffix ends the name of every segment file: its number, zero-padded
// so that names sort as numbers do, then this.
const segmentSuffix = ".out"

// segments keeps the bytes of stored output chunks outside the database, in
// append-only files in one directory; the database row of each chunk keeps
// the segment, offset and size of its bytes. Storing output this way writes
// each byte once, where SQLite writes it to the WAL and again to the
// database when it checkpoints (and checksums and copies it on the way).
//
// Appends run inside the database's write transaction, which SQLite holds for
// one writer at a time across processes: the end of the segment, read under
// it, is where the chunks go. A transaction that rolls back leaves its bytes
// behind, unreferenced; they cost space and nothing else.
type segments struct {
	dir   string
	limit int64 // segmentLimit, but for tests

	wmu sync.Mutex
	w   *os.File // the segment appends go to; nil before the first
	wn  int      // its number

	rmu     sync.Mutex
	readers map[int]*os.File
}

// segmentSpan is where a chunk's bytes are in a segment.
type segmentSpan struct {
	segment int
	offset  int64
	size    int64
}

func newSegments(dir string) *segments {
	return &segments{dir: dir, limit: segmentLimit, readers: map[int]*os.File{}}
}

// lastStored reports the span of the chunk stored last in a segment, as
// the database has it; ok is false if there is none.
type lastStored func() (span segmentSpan, ok bool, err error)

// append stores chunks: it works out where each one's bytes go in the
// current segment, has insert store the rows that say so, and then writes
// the bytes. The caller holds the database's write lock, and rolls back
// insert's rows if append fails. last is asked before the first append of
// this process (see writable).
func (g *segments) append(chunks []domain.OutputChunk, insert func([]segmentSpan) error, last lastStored) error {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	end, err := g.writable(last)
	if err != nil {
		return err
	}
	spans := make([]segmentSpan, len(chunks))
	for i, ch := range chunks {
		spans[i] = segmentSpan{segment: g.wn, offset: end, size: int64(len(ch.Data))}
		end += int64(len(ch.Data))
	}
	if err := insert(spans); err != nil {
		return err
	}
	for _, ch := range chunks {
		if _, err := io.WriteString(g.w, ch.Data); err != nil {
			// What was written of this batch is left unreferenced; the next
			// append starts after it, at the end of the file.
			return fmt.Errorf("write output segment %s: %w", g.w.Name(), err)
		}
	}
	return nil
}

// writable opens the segment to append to, the last one or, once that is
// past segmentLimit, a new one, and returns its size: where the next byte
// goes. Another process on the same database may have appended to the file
// or started a newer one since; either is fine, as the size is read under
// the write lock and a span names its segment.
//
// The first time, it also checks the segment against the database: a power
// failure can leave rows whose bytes never reached the segment (the
// database's commit was on disk, the segment's write was not). Appending at
// the segment's end would then put new output where those rows point, and
// reading them would return another command's bytes. So when the chunk
// stored last ends past its segment's end, appends go to a new segment, and
// those rows keep failing to read with an error that names the file.
func (g *segments) writable(stored lastStored) (int64, error) {
	if g.w == nil {
		// Chmod too: a directory an older rdev made is 0750.
		if err := errors.Join(os.MkdirAll(g.dir, 0o700), os.Chmod(g.dir, 0o700)); err != nil { //nolint:gosec // a directory: 0700 is owner-only
			return 0, fmt.Errorf("create output segment directory: %w", err)
		}
		n, err := g.last()
		if err != nil {
			return 0, err
		}
		span, ok, err := stored()
		if err != nil {
			return 0, fmt.Errorf("find the last output stored in a segment: %w", err)
		}
		n = max(n, 1)
		if ok && span.segment >= n {
			n = span.segment
			size, err := g.size(n)
			if err != nil {
				return 0, err
			}
			if size < span.offset+span.size {
				n++
			}
		}
		if err := g.open(n); err != nil {
			return 0, err
		}
	}
	fi, err := g.w.Stat()
	if err != nil {
		return 0, fmt.Errorf("output segment %s: %w", g.w.Name(), err)
	}
	if fi.Size() < g.limit {
		return fi.Size(), nil
	}
	if err := g.w.Close(); err != nil {
		return 0, fmt.Errorf("close output segment %s: %w", g.w.Name(), err)
	}
	g.w = nil
	if err := g.open(g.wn + 1); err != nil {
		return 0, err
	}
	return g.writable(stored)
}

// size returns the size of segment n, 0 if it does not exist.
func (g *segments) size(n int) (int64, error) {
	fi, err := os.Stat(g.path(n))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("output segment: %w", err)
	}
	return fi.Size(), nil
}

func (g *segments) open(n int) error {
	f, err := os.OpenFile(g.path(n), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open output segment: %w", err)
	}
	g.w, g.wn = f, n
	return nil
}

// last returns the highest segment number in the directory, 0 if there is
// none.
func (g *segments) last() (int, error) {
	entries, err := os.ReadDir(g.dir)
	if err != nil {
		return 0, fmt.Errorf("list output segments: %w", err)
	}
	last := 0
	for _, e := range entries {
		if n, ok := segmentNumber(e.Name()); ok {
			last = max(last, n)
		}
	}
	return last, nil
}

func segmentNumber(name string) (int, bool) {
	digits, ok := strings.CutSuffix(name, segmentSuffix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	return n, err == nil && n > 0
}

func (g *segments) path(n int) string {
	return filepath.Join(g.dir, fmt.Sprintf("%012d%s", n, segmentSuffix))
}

// read returns the bytes of span. A segment shorter than the span (cut
// short by a power failure between the database's commit reaching the disk
// and the segment's) is an error that names it.
func (g *segments) read(span segmentSpan) (string, error) {
	if span.size == 0 {
		return "", nil
	}
	f, err := g.reader(span.segment)
	if err != nil {
		return "", err
	}
	buf := make([]byte, span.size)
	if _, err := f.ReadAt(buf, span.offset); err != nil {
		if errors.Is(err, io.EOF) {
			return "", fmt.Errorf("output segment %s ends before the chunk stored at %d (%d bytes)", f.Name(), span.offset, span.size)
		}
		return "", fmt.Errorf("read output segment: %w", err)
	}
	// buf is not written again: the string may own it.
	return unsafe.String(&buf[0], len(buf)), nil
}

// reader returns an open file of segment n, kept for later reads.
func (g *segments) reader(n int) (*os.File, error) {
	g.rmu.Lock()
	defer g.rmu.Unlock()
	if f, ok := g.readers[n]; ok {
		return f, nil
	}
	f, err := os.Open(g.path(n))
	if err != nil {
		return nil, fmt.Errorf("open output segment: %w", err)
	}
	g.readers[n] = f
	return f, nil
}

// close closes the segment files.
func (g *segments) close() error {
	var errs []error
	g.wmu.Lock()
	if g.w != nil {
		errs = append(errs, g.w.Close())
		g.w = nil
	}
	g.wmu.Unlock()
	g.rmu.Lock()
	defer g.rmu.Unlock()
	for n, f := range g.readers {
		errs = append(errs, f.Close())
		delete(g.readers, n)
	}
	return errors.Join(errs...)
}
