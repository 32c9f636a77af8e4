package scalars

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

// rooms are the sizes of dst that the tests give escape, besides room for
// all of s: the least it takes (maxStep+1), and sizes on either side of
// what escapeAVX2 needs.
var rooms = []int{
	maxStep + 1, maxStep + 2, 20, 31, 32, 33, 63, 64, 65, 100,
	asmRoom - 1, asmRoom, asmRoom + 1, asmRoom + 2, asmRoom + 6,
	255, 256, 257, 300, 512, 1000, 4096,
}

// asmRoom is the room escapeAVX2 needs on amd64 (avx2MinDst, which
// TestEscapeAVX2Room checks): dst has less or more around it.
const asmRoom = 32*6 + 32

// escapeWant is s escaped by escapeGeneric in one call, with room for the
// longest escape of every byte.
func escapeWant(t testing.TB, s string) []byte {
	dst := make([]byte, 6*len(s)+maxStep+1)
	r, w := escapeGeneric(dst, s)
	if r != len(s) {
		t.Fatalf("escapeGeneric(%q) read %d of %d bytes with room for all", s, r, len(s))
	}
	return dst[:w]
}

// escapeRoom escapes s with escape into dst of the given size, again and
// again as AppendString does, and checks each call: it reads something,
// writes within dst and nothing past it, and writes what escapeGeneric
// writes for the bytes it read. It returns all it wrote.
func escapeRoom(t testing.TB, s string, room int) []byte {
	const guard = 64
	buf := make([]byte, room+guard)
	var out []byte
	for s != "" {
		for k := range buf[:min(room, 8*len(s))] {
			buf[k] = 0xa5 // bytes it must overwrite before it counts them
		}
		for k := range buf[room:] {
			buf[room+k] = 0xa5
		}
		r, w := escape(buf[:room:room], s)
		if r <= 0 || r > len(s) || w < 0 || w > room {
			t.Fatalf("escape(%q) into %d bytes: read %d, wrote %d", s, room, r, w)
		}
		for k := room; k < len(buf); k++ {
			if buf[k] != 0xa5 {
				t.Fatalf("escape(%q) into %d bytes wrote past dst, at %d", s, room, k)
			}
		}
		if want := escapeWant(t, s[:r]); !bytes.Equal(buf[:w], want) {
			t.Fatalf("escape(%q) into %d bytes read %d and wrote\n%q, want\n%q", s, room, r, buf[:w], want)
		}
		out = append(out, buf[:w]...)
		s = s[r:]
	}
	return out
}

// fewRooms are the sizes of dst for the tests that try many strings.
var fewRooms = []int{maxStep + 1, 64, asmRoom - 1, asmRoom, asmRoom + 1, 300}

// checkEscape checks that escape writes what escapeGeneric writes for s,
// with dst of every size in rooms smaller than room for all of s, and with
// that room.
func checkEscape(t testing.TB, s string, rooms []int) {
	t.Helper()
	want := escapeWant(t, s)
	all := 6*len(s) + asmRoom
	for _, room := range rooms {
		if room < all {
			checkRoom(t, s, room, want)
		}
	}
	checkRoom(t, s, all, want)
}

func checkRoom(t testing.TB, s string, room int, want []byte) {
	t.Helper()
	if got := escapeRoom(t, s, room); !bytes.Equal(got, want) {
		t.Fatalf("escape(%q) into %d bytes at a time = %q, want %q", s, room, got, want)
	}
}

// specials are bytes and characters that are not copied as they are, or
// that end a run of plain bytes in either loop.
var specials = []string{
	"\x00", "\x01", "\x08", "\t", "\n", "\r", "\x1b", "\x1f", "\"", "\\",
	"\x7f", " ", "/", "<", "é", "✓", "😀", "\u2028", "\ufffd", "Я", "中", "│",
	// The ends of the ranges of valid sequences, and just past them.
	"\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xe1\x80\x80", "\xec\xbf\xbf", "\xed\x9f\xbf",
	"\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf",
	"\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf", "\xed\xa0\x80", "\xf0\x80\x80\x80",
	"\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
	// Invalid: lone and stray bytes, cut sequences, and ones too long.
	"\x80", "\xbf", "\xc0", "\xc3", "\xe2", "\xe2\x9c", "\xf0\x9f\x98", "\xff",
	"\xc3\xa9\x80", "\xe2\x9c\x93\xbf", "\xc3\xc3\xa9", "\xe2\xc3\xa9", "\xe2\x9c\xe2\x9c\x93",
}

// TestEscapeAlign puts each special at every offset of plain strings as
// long as two and three blocks, themselves at every offset from the start
// of s, so that it falls at every position of a block and at the ends.
func TestEscapeAlign(t *testing.T) {
	for _, sp := range specials {
		for _, n := range []int{63, 64, 96, 129} {
			for at := 0; at <= n; at++ {
				s := strings.Repeat("x", at) + sp + strings.Repeat("y", n-at)
				checkEscape(t, s, fewRooms)
				// And beside other specials: one that escapeAVX2
				// escapes just after it and a non-ASCII one a block on.
				checkEscape(t, s[:at+len(sp)]+"\n"+s[at+len(sp):]+"é"+strings.Repeat("z", 40), fewRooms)
			}
		}
	}
}

// TestEscapeRuns checks long runs of each special, alone and between plain
// bytes, at each offset from the start of s.
func TestEscapeRuns(t *testing.T) {
	for _, sp := range specials {
		for _, n := range []int{1, 2, 5, 32, 33, 200} {
			run := strings.Repeat(sp, n)
			for pad := range 33 {
				rs := fewRooms
				if pad < 2 {
					rs = rooms
				}
				checkEscape(t, strings.Repeat("a", pad)+run, rs)
				checkEscape(t, strings.Repeat("a", pad)+run+strings.Repeat("b", 70)+run, rs)
			}
		}
	}
	var all strings.Builder
	for range 4 {
		for c := range 256 {
			all.WriteByte(byte(c))
		}
	}
	checkEscape(t, all.String(), rooms)
	checkEscape(t, strings.Repeat("\x00\x1f", 500), rooms)
	checkEscape(t, strings.Repeat("\xff", 1000), rooms)
	checkEscape(t, strings.Repeat("é", 500), rooms)
	checkEscape(t, strings.Repeat("中文", 300), rooms)
	checkEscape(t, strings.Repeat("😀", 300), rooms)
	checkEscape(t, strings.Repeat("\xe2\x9c", 300), rooms)
	var runes strings.Builder
	for r := rune(0); r < 0x3000; r++ {
		runes.WriteRune(r)
	}
	checkEscape(t, runes.String(), rooms)
}

// TestEscapeSample checks outputs like a command's: numbered lines, a build
// log and JSON lines, which are mostly ASCII with some UTF-8.
func TestEscapeSample(t *testing.T) {
	for _, s := range []string{SeqChunk(), ProseChunk(), JSONLinesChunk()} {
		checkEscape(t, s, rooms)
		checkEscape(t, strings.ReplaceAll(s, "e", "é"), rooms)
	}
}

// TestEscapeRandom checks random strings drawn from plain bytes and the
// specials, in several proportions.
func TestEscapeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		checkEscape(t, randomString(rng), rooms)
	}
}

// randomString draws plain bytes, specials, characters of every length and
// random bytes, with one in a random number of them not plain.
func randomString(rng *rand.Rand) string {
	var b strings.Builder
	n := rng.IntN(600)
	plain := rng.IntN(64) + 2
	for b.Len() < n {
		switch rng.IntN(plain) {
		case 0:
			b.WriteString(specials[rng.IntN(len(specials))])
		case 1:
			switch rng.IntN(4) {
			case 0:
				b.WriteByte(byte(rng.IntN(256)))
			case 1:
				b.WriteRune(rune(0x80 + rng.IntN(0x800-0x80)))
			case 2:
				b.WriteRune(rune(0x800 + rng.IntN(0x10000-0x800)))
			default:
				b.WriteRune(rune(0x10000 + rng.IntN(0x110000-0x10000)))
			}
		default:
			b.WriteByte(byte(' ' + rng.IntN(95)))
		}
	}
	return b.String()
}

// FuzzEscape checks that escape writes what escapeGeneric writes, with dst
// of many sizes and s at every offset from the start of its block.
func FuzzEscape(f *testing.F) {
	f.Add(strings.Repeat("12345\n", 20), uint8(0))
	f.Add(strings.Repeat("x", 63)+"\"é\\\xff", uint8(1))
	f.Add(strings.Repeat("\x00\u2028", 40), uint8(31))
	f.Add(JSONLinesChunk()[:300], uint8(7))
	f.Fuzz(func(t *testing.T, s string, pad uint8) {
		s = strings.Repeat("p", int(pad%64)) + s
		want := escapeWant(t, s)
		if !utf8.Valid(want) {
			t.Fatalf("escapeGeneric(%q) = %q: not UTF-8", s, want)
		}
		checkEscape(t, s, rooms)
	})
}

// BenchmarkEscape runs escape and escapeGeneric alone on chunks of a
// command's output, into room for all of it.
func BenchmarkEscape(b *testing.B) {
	for _, in := range []struct{ name, chunk string }{
		{"seq", SeqChunk()},
		{"prose", ProseChunk()},
		{"jsonl", JSONLinesChunk()},
		{"accents", strings.ReplaceAll(ProseChunk(), "e", "é")},
		{"cjk", strings.Repeat("构建通过，所有测试均已通过。\n", 64<<10/43)},
	} {
		dst := make([]byte, 6*len(in.chunk)+maxStep+1)
		for _, bm := range []struct {
			name   string
			escape func([]byte, string) (int, int)
		}{
			{"escape", escape},
			{"generic", escapeGeneric},
		} {
			b.Run(in.name+"/"+bm.name, func(b *testing.B) {
				b.SetBytes(int64(len(in.chunk)))
				for b.Loop() {
					bm.escape(dst, in.chunk)
				}
			})
		}
	}
}
