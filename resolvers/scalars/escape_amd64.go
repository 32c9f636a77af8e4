//go:build !purego

package scalars

import (
	"encoding/binary"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useAVX2 tells whether escape runs escapeAVX2, which needs AVX2 for its
// vectors, BMI1 for TZCNT, BLSR and BLSMSK, and POPCNT; without them escape
// is escapeGeneric alone. GODEBUG=cpu.avx2=off turns it off, to try that.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasBMI1 && cpu.X86.HasPOPCNT

// escapeAVX2 needs this much of s left, a block and the 32 bytes after it
// (it may reload 32 bytes from any byte of a block), and this much room in
// dst, a block of 32 bytes of six-byte escapes and a 32-byte store past
// them.
const (
	avx2MinSrc = 64
	avx2MinDst = 32*6 + 32
)

// avx2Tables are the tables escapeAVX2 works from, built from escapeOne so
// that both loops write the same escapes.
type avx2Tables struct {
	// escapes holds, for each byte to escape (a control character, '"' or
	// '\\'), its escape in the low bytes, which escapeAVX2 writes with one
	// 8-byte store, and the escape's length in the top byte, which that
	// store writes too but the next store covers.
	escapes [256]uint64
	// short and letters are indexed by the low four bits of a byte, as
	// VPSHUFB indexes them, twice over for both halves of a vector: for
	// each byte c whose escape is two bytes long ('\\' and a letter), of
	// which no two share their low four bits, short holds c and letters
	// the letter. The other entries of short are 0x80, which no byte
	// below 0x80 equals.
	short, letters [32]byte
	// expand holds, for each set of bytes of a group of eight that have a
	// two-byte escape, the VPSHUFB indexes that spread the group out into
	// its escaped form: the index of each byte, after index 8 (a
	// backslash) for each byte in the set.
	expand [256][16]byte
	// cont, lead2, span2, lead3, span3 and surrogate are bytes repeated
	// 32 times, with which escapeAVX2 finds the bytes of two- and
	// three-byte UTF-8 sequences: cont is 0xc0 (signed, it is more than the
	// bytes 0x80 to 0xbf, the continuation bytes); a first byte of a
	// two-byte sequence is lead2 (0xc2) to lead2+span2 (0xdf), and of a
	// three-byte one lead3 (0xe1) to lead3+span3 (0xef) but for surrogate
	// (0xed). Sequences that start with 0xe0 or 0xed have a narrower
	// range for their second byte, and those of four bytes are rarer:
	// escapeAVX2 leaves them to the Go code, as it does invalid bytes.
	cont, lead2, span2, lead3, span3, surrogate [32]byte
}

// avx2Tab holds the tables escapeAVX2 works from.
var avx2Tab = func() (t *avx2Tables) {
	t = new(avx2Tables)
	for k := range t.short {
		t.short[k] = 0x80
	}
	var buf [maxStep + 8]byte
	for c := range utf8.RuneSelf {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		clear(buf[:])
		_, n := escapeOne(buf[:], string(rune(c)))
		t.escapes[c] = binary.LittleEndian.Uint64(buf[:8])&(1<<56-1) | uint64(n)<<56
		if n == 2 {
			if t.short[c&0xf] != 0x80 {
				panic("scalars: two bytes with a two-byte escape share their low four bits")
			}
			for _, k := range []int{c & 0xf, c&0xf + 16} {
				t.short[k], t.letters[k] = byte(c), buf[1]
			}
		}
	}
	for k := range 32 {
		t.cont[k], t.lead2[k], t.span2[k] = 0xc0, 0xc2, 0xdf-0xc2
		t.lead3[k], t.span3[k], t.surrogate[k] = 0xe1, 0xef-0xe1, 0xed
	}
	for m := range t.expand {
		row := t.expand[m][:0]
		for i := range 8 {
			if m&(1<<i) != 0 {
				row = append(row, 8)
			}
			row = append(row, byte(i))
		}
	}
	return t
}()

// escapeAVX2 writes the JSON string contents of the srcLen bytes at src
// into the dstLen bytes at dst, 32 bytes at a time, as escapeGeneric does,
// and returns how much it read and wrote. It copies the valid two- and
// three-byte UTF-8 sequences within a block, and stops before the first
// byte of any other sequence of bytes of 0x80 or more (one that goes on
// into the next block, of four bytes, starting with 0xe0 or 0xed, or
// invalid), which it leaves to the Go code. It stops too when fewer than
// avx2MinSrc bytes are left to read or avx2MinDst bytes of room to write.
// It writes past the bytes it reports as written, but never past dstLen.
//
//go:noescape
func escapeAVX2(dst *byte, dstLen int, src *byte, srcLen int, tables *avx2Tables) (read, written int)

// escape writes the JSON string contents of s into dst and returns how much
// of s it read and of dst it wrote; it stops early only when dst is nearly
// full. escapeAVX2 does the bulk of it; the Go code takes the characters
// that escapeAVX2 stops at, and escapes the last bytes of s, or into the
// last bytes of dst.
func escape(dst []byte, s string) (read, written int) {
	i, j := 0, 0
	for useAVX2 && len(s)-i >= avx2MinSrc && len(dst)-j >= avx2MinDst {
		r, w := escapeAVX2(&dst[j], len(dst)-j, unsafe.StringData(s[i:]), len(s)-i, avx2Tab)
		i, j = i+r, j+w
		// Where escapeAVX2 stopped before a byte of 0x80 or more (the
		// first byte of a sequence it leaves to the Go code, or of one that
		// goes on past its block), copy or replace the character there, and
		// the invalid bytes after it, then go back to escapeAVX2. Any other
		// stop fails the loop's test.
		for i < len(s) && s[i] >= utf8.RuneSelf && j <= len(dst)-maxStep-1 {
			r, w := escapeOne(dst[j:], s[i:])
			i, j = i+r, j+w
			if r > 1 {
				break
			}
		}
	}
	r, w := escapeGeneric(dst[j:], s[i:])
	return i + r, j + w
}
