package sqlite_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/bunstore"
	"github.com/rdev-hq/rdev/migrations"
)

// outputChunkSize is the recorder's largest chunk (domain.OutputConfig's
// MaxChunk); it cuts at the last newline within it.
const outputChunkSize = 64 << 10

// seqChunks is the output of `seq 1 5000000` (38 MB) cut as the recorder
// cuts it, made once for every benchmark of the run.
var seqChunks = sync.OnceValue(func() []string {
	var chunks []string
	buf := make([]byte, 0, outputChunkSize)
	for i := 1; i <= 5_000_000; i++ {
		if len(buf)+len(strconv.Itoa(i))+1 > outputChunkSize {
			chunks = append(chunks, string(buf))
			buf = buf[:0]
		}
		buf = strconv.AppendInt(buf, int64(i), 10)
		buf = append(buf, '\n')
	}
	return append(chunks, string(buf))
})

// BenchmarkAppendOutput measures storing a busy command's output: seq's
// numbered lines in 64 KiB chunks, appended to one command a batch per
// AppendOutput call. "baseline=file" writes the same bytes to a file in the
// same directory with os.File.Write and nothing else; read the store's MB/s
// as a fraction of it. ns/op and MB/s are the caller's wall time; cpu-ns/B
// is the whole process's CPU time per byte, including work done off the
// caller's goroutine (the WAL is checkpointed before the clock stops, so
// deferred work is counted too); wal-MiB is the largest the WAL file grew.
// An op is one chunk; 3,000 of them (190 MB) are enough for the store to
// reach its steady state of checkpoints. Run it with
//
//	go test -run '^$' -bench AppendOutput -benchtime 3000x -count 6 ./infra/sqlite
func BenchmarkAppendOutput(b *testing.B) {
	b.Run("baseline=file", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "output"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		var chunks [][]byte
		for _, c := range seqChunks() {
			chunks = append(chunks, []byte(c))
		}
		b.SetBytes(int64(len(chunks[0])))
		var written int64
		cpu := startCPU(b)
		for i := 0; b.Loop(); i++ {
			n, err := f.Write(chunks[i%len(chunks)])
			if err != nil {
				b.Fatal(err)
			}
			written += int64(n)
		}
		cpu.report(b, written, "cpu-ns/B")
	})
	for _, batch := range []int{1, 4, 16} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			benchmarkAppendOutput(b, batch)
		})
	}
}

// benchmarkAppendOutput appends chunks of seqChunks, batch per call; an op
// is one chunk, so batch sizes compare per byte.
func benchmarkAppendOutput(b *testing.B, batch int) {
	path := filepath.Join(b.TempDir(), "rdev.db")
	s := mustOpenFile(b, path)
	ctx := b.Context()
	if err := s.Migrate(ctx, migrations.SQLite()); err != nil {
		b.Fatal(err)
	}
	c := &domain.Command{ID: domain.NewID(time.Now()), ProjectID: "web", Type: domain.CommandExec,
		Argv: []string{"seq", "1", "5000000"}, Status: domain.CommandQueued, CreatedAt: time.Now()}
	if err := s.CreateCommand(ctx, c, nil); err != nil {
		b.Fatal(err)
	}
	chunks := seqChunks()
	b.SetBytes(int64(len(chunks[0])))
	pending := make([]domain.OutputChunk, 0, batch)
	var seq, stored, walSize int64
	cpu := startCPU(b)
	for b.Loop() {
		if seq%16 == 0 {
			walSize = max(walSize, fileSize(b, path+"-wal"))
		}
		seq++
		data := chunks[int(seq-1)%len(chunks)]
		pending = append(pending, domain.OutputChunk{CommandID: c.ID, Seq: seq, Stream: domain.Stdout, Data: data, At: time.Now()})
		stored += int64(len(data))
		if len(pending) == batch {
			if err := s.AppendOutput(ctx, domain.Lease{}, pending); err != nil {
				b.Fatal(err)
			}
			pending = pending[:0]
		}
	}
	if len(pending) > 0 {
		if err := s.AppendOutput(ctx, domain.Lease{}, pending); err != nil {
			b.Fatal(err)
		}
	}
	checkpoint(b, s)
	cpu.report(b, stored, "cpu-ns/B")
	b.ReportMetric(float64(walSize)/(1<<20), "wal-MiB")
}

// fileSize is the size of the file at path, 0 if there is none.
func fileSize(tb testing.TB, path string) int64 {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// checkpoint copies the whole WAL into the database, so that CPU time spent
// later, off the benchmark's clock, is counted.
func checkpoint(tb testing.TB, s *bunstore.Store) {
	tb.Helper()
	if _, err := s.DB().ExecContext(tb.Context(), "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		tb.Fatal(err)
	}
}
