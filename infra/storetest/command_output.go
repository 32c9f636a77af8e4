package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rdev-hq/rdev/domain"
)

func testAppendOutput(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		a, b := newCommand("web", 0), newCommand("web", 1)
		mustCreateCommands(t, ctx, repo, []*domain.Command{a, b})
		now := time.Now()
		// Output is kept byte for byte: NUL, invalid UTF-8, quotes, nothing.
		datas := []string{"hello\n", "", "nul\x00byte", "bad \xff\xfe utf-8", "ünïcode ✓ 😀 'q' \"d\" \\ ?", "\r\n\t"}
		var wantA, wantB []domain.OutputChunk
		var all []domain.OutputChunk
		for i, d := range datas {
			stream := []domain.Stream{domain.Stdout, domain.Stderr}[i%2]
			when := at(now.Add(time.Duration(i) * time.Millisecond))
			ca := domain.OutputChunk{CommandID: a.ID, Seq: int64(i + 1), Stream: stream, Data: d, At: when}
			cb := domain.OutputChunk{CommandID: b.ID, Seq: int64(i + 1), Stream: stream, Data: strings.ToUpper(d), At: when}
			wantA, wantB = append(wantA, ca), append(wantB, cb)
			all = append(all, ca, cb) // two commands, interleaved
		}
		if err := repo.AppendOutput(ctx, domain.Lease{}, all); err != nil {
			t.Fatalf("AppendOutput: %v", err)
		}
		assertOutput(t, repo, a.ID, 0, 0, wantA)
		assertOutput(t, repo, b.ID, 0, 0, wantB)

		// A later batch continues the sequence.
		more := domain.OutputChunk{CommandID: a.ID, Seq: 7, Stream: domain.Stdout, Data: "more", At: at(now)}
		if err := repo.AppendOutput(ctx, domain.Lease{}, []domain.OutputChunk{more}); err != nil {
			t.Fatalf("AppendOutput: %v", err)
		}
		assertOutput(t, repo, a.ID, 0, 0, append(wantA, more))
	})

	t.Run("Large", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := newCommand("web", 0)
		mustCreateCommand(t, ctx, repo, c)
		now := at(time.Now())
		// More chunks, and more bytes, than one statement of a store holds.
		var want []domain.OutputChunk
		for i := range 2500 {
			want = append(want, domain.OutputChunk{CommandID: c.ID, Seq: int64(i + 1), Stream: domain.Stdout, Data: fmt.Sprintf("line %d\n", i), At: now})
		}
		big := strings.Repeat("0123456789abcdef", 40<<10) // 640 KiB
		for i := range 3 {
			want = append(want, domain.OutputChunk{CommandID: c.ID, Seq: int64(2501 + i), Stream: domain.Stderr, Data: big, At: now})
		}
		if err := repo.AppendOutput(ctx, domain.Lease{}, want); err != nil {
			t.Fatalf("AppendOutput(%d chunks): %v", len(want), err)
		}
		got, err := repo.ReadOutput(ctx, c.ID, 0, 0, 0)
		if err != nil {
			t.Fatalf("ReadOutput: %v", err)
		}
		if len(got) != len(want) {
			t.Fatalf("ReadOutput returned %d chunks, want %d", len(got), len(want))
		}
		for i := range want {
			if got[i].Seq != want[i].Seq || got[i].Data != want[i].Data {
				t.Fatalf("chunk %d: seq %d, %d bytes; want seq %d, %d bytes", i, got[i].Seq, len(got[i].Data), want[i].Seq, len(want[i].Data))
			}
		}
	})

	t.Run("Empty", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		if err := repo.AppendOutput(ctx, domain.Lease{}, nil); err != nil {
			t.Fatalf("AppendOutput(nil): %v", err)
		}
	})

	t.Run("ErrConflict", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := newCommand("web", 0)
		mustCreateCommand(t, ctx, repo, c)
		first := []domain.OutputChunk{chunk(c.ID, 1, "one"), chunk(c.ID, 2, "two")}
		if err := repo.AppendOutput(ctx, domain.Lease{}, first); err != nil {
			t.Fatal(err)
		}
		// A batch with one stored seq stores nothing.
		err := repo.AppendOutput(ctx, domain.Lease{}, []domain.OutputChunk{chunk(c.ID, 3, "three"), chunk(c.ID, 2, "again")})
		if code := domain.ErrorCode(err); code != domain.ECONFLICT {
			t.Fatalf("AppendOutput(stored seq) = %v (code %q), want code %q", err, code, domain.ECONFLICT)
		}
		assertOutput(t, repo, c.ID, 0, 0, first)

		// Nor does one too large for one statement whose last chunk clashes.
		var many []domain.OutputChunk
		for seq := range int64(1500) {
			many = append(many, chunk(c.ID, seq+3, "new"))
		}
		err = repo.AppendOutput(ctx, domain.Lease{}, append(many, chunk(c.ID, 1, "again")))
		if code := domain.ErrorCode(err); code != domain.ECONFLICT {
			t.Fatalf("AppendOutput(1,501 chunks, the last stored) = %v (code %q), want code %q", err, code, domain.ECONFLICT)
		}
		assertOutput(t, repo, c.ID, 0, 0, first)
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := newCommand("web", 0)
		mustCreateCommand(t, ctx, repo, c)
		err := repo.AppendOutput(ctx, domain.Lease{}, []domain.OutputChunk{chunk(c.ID, 1, "one"), chunk(domain.NewID(time.Now()), 1, "x")})
		if code := domain.ErrorCode(err); code != domain.ENOTFOUND {
			t.Fatalf("AppendOutput(unknown command) = %v (code %q), want code %q", err, code, domain.ENOTFOUND)
		}
		assertOutput(t, repo, c.ID, 0, 0, nil)
	})

	t.Run("ErrInvalid", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := newCommand("web", 0)
		mustCreateCommand(t, ctx, repo, c)
		bad := chunk(c.ID, 2, "x")
		bad.Stream = "STDIN"
		for _, chunks := range [][]domain.OutputChunk{
			{chunk(c.ID, 1, "ok"), chunk(c.ID, 0, "seq 0")},
			{chunk(c.ID, -1, "negative")},
			{chunk(c.ID, 1, "ok"), bad},
		} {
			if err := repo.AppendOutput(ctx, domain.Lease{}, chunks); domain.ErrorCode(err) != domain.EINVALID {
				t.Errorf("AppendOutput(%+v) = %v, want code %q", chunks, err, domain.EINVALID)
			}
		}
		assertOutput(t, repo, c.ID, 0, 0, nil)
	})
}

func testReadOutput(t *testing.T, newRepo func(t *testing.T) domain.CommandRepository) {
	t.Run("Paging", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c, other := newCommand("web", 0), newCommand("web", 1)
		mustCreateCommands(t, ctx, repo, []*domain.Command{c, other})
		var all []domain.OutputChunk
		// Stored out of order, and past seq 9 so numbers cannot sort as text.
		for _, seq := range []int64{3, 1, 12, 2, 10, 11, 4} {
			all = append(all, chunk(c.ID, seq, fmt.Sprint("chunk ", seq)))
		}
		if err := repo.AppendOutput(ctx, domain.Lease{}, append(all, chunk(other.ID, 1, "other"))); err != nil {
			t.Fatal(err)
		}
		bySeq := func(seqs ...int64) []domain.OutputChunk {
			var out []domain.OutputChunk
			for _, s := range seqs {
				out = append(out, chunk(c.ID, s, fmt.Sprint("chunk ", s)))
			}
			return out
		}
		tests := []struct {
			after int64
			limit int
			want  []domain.OutputChunk
		}{
			{0, 0, bySeq(1, 2, 3, 4, 10, 11, 12)},
			{0, 3, bySeq(1, 2, 3)},
			{3, 2, bySeq(4, 10)},
			{4, 100, bySeq(10, 11, 12)},
			{5, 0, bySeq(10, 11, 12)},
			{12, 10, nil},
			{-1, 1, bySeq(1)},
		}
		for _, tt := range tests {
			assertOutput(t, repo, c.ID, tt.after, tt.limit, tt.want)
		}
	})

	// A read bounded in bytes stops after the chunk that reaches the bound,
	// so it returns at least one chunk, however large, and counts the
	// bytes of the command's chunks only.
	t.Run("MaxBytes", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c, other := newCommand("web", 0), newCommand("web", 1)
		mustCreateCommands(t, ctx, repo, []*domain.Command{c, other})
		sizes := map[int64]int{1: 10, 2: 20, 3: 30, 4: 40, 5: 1000}
		sized := func(seqs ...int64) []domain.OutputChunk {
			var out []domain.OutputChunk
			for _, s := range seqs {
				out = append(out, chunk(c.ID, s, strings.Repeat("x", sizes[s])))
			}
			return out
		}
		all := append(sized(1, 2), chunk(other.ID, 1, strings.Repeat("o", 5000)))
		if err := repo.AppendOutput(ctx, domain.Lease{}, append(all, sized(3, 4, 5)...)); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			after           int64
			limit, maxBytes int
			want            []domain.OutputChunk
		}{
			{0, 0, 0, sized(1, 2, 3, 4, 5)},
			{0, 0, 1, sized(1)},
			{0, 0, 10, sized(1)},
			{0, 0, 11, sized(1, 2)},
			{0, 0, 30, sized(1, 2)},
			{0, 0, 31, sized(1, 2, 3)},
			{0, 0, 101, sized(1, 2, 3, 4, 5)},
			{0, 2, 1000, sized(1, 2)},
			{1, 0, 50, sized(2, 3)},
			{4, 0, 1, sized(5)},
			{5, 0, 1, nil},
		}
		for _, tt := range tests {
			assertRead(t, repo, c.ID, tt.after, tt.limit, tt.maxBytes, tt.want)
		}
	})

	t.Run("None", func(t *testing.T) {
		t.Parallel()
		repo, ctx := newRepo(t), t.Context()
		c := newCommand("web", 0)
		mustCreateCommand(t, ctx, repo, c)
		assertOutput(t, repo, c.ID, 0, 10, nil)
		assertOutput(t, repo, domain.NewID(time.Now()), 0, 10, nil)
		assertRead(t, repo, c.ID, 0, 10, 1, nil)
	})
}

// chunkTime is the time of every chunk made by chunk.
var chunkTime = at(time.Date(2026, 11, 23, 12, 0, 0, 123456000, time.UTC))

func chunk(commandID string, seq int64, data string) domain.OutputChunk {
	return domain.OutputChunk{CommandID: commandID, Seq: seq, Stream: domain.Stdout, Data: data, At: chunkTime}
}

func assertOutput(tb testing.TB, repo domain.CommandRepository, id string, after int64, limit int, want []domain.OutputChunk) {
	tb.Helper()
	assertRead(tb, repo, id, after, limit, 0, want)
}

// assertRead is assertOutput for a read bounded in bytes too.
func assertRead(tb testing.TB, repo domain.CommandRepository, id string, after int64, limit, maxBytes int, want []domain.OutputChunk) {
	tb.Helper()
	got, err := repo.ReadOutput(tb.Context(), id, after, limit, maxBytes)
	if err != nil {
		tb.Fatalf("ReadOutput(%s, %d, %d, %d): %v", id, after, limit, maxBytes, err)
	}
	if diff := cmp.Diff(want, got, cmpOpts...); diff != "" {
		tb.Errorf("ReadOutput(%s, after %d, limit %d, maxBytes %d) (-want +got):\n%s", id, after, limit, maxBytes, diff)
	}
	for i := range got {
		assertUTC(tb, "output chunk", &got[i].At)
	}
}
