//go:build !purego

package scalars

import (
	"encoding/binary"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// useAVX2 tells whether escape runs escapeAVX2, which needs AVX2 for its
// vectors and BMI1 for TZCNT, BLSR and BLSMSK; without them escape is
// escapeGeneric alone.
var useAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasBMI1

// escapeAVX2 needs this much of s left, a block and the 32 bytes after it
// (it reloads from any byte of a block), and this much room in dst, a block
// of 32 bytes of six-byte escapes and a 32-byte store past them.
const (
	avx2MinSrc = 64
	avx2MinDst = 32*6 + 32
)

// escapeTable holds, for each byte that escapeAVX2 escapes (a control
// character, '"' or '\\'), its escape in the low bytes, which escapeAVX2
// writes with one 8-byte store, and the escape's length in the top byte,
// which that store writes too but the next store covers. It is built from
// escapeOne, so that both loops write the same escapes.
var escapeTable = func() (t [256]uint64) {
	var buf [maxStep + 8]byte
	for c := range utf8.RuneSelf {
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		_, n := escapeOne(buf[:], string(rune(c)))
		t[c] = binary.LittleEndian.Uint64(buf[:8])&(1<<56-1) | uint64(n)<<56
		clear(buf[:])
	}
	return t
}()

// escapeAVX2 writes the JSON string contents of the srcLen bytes at src
// into the dstLen bytes at dst, 32 bytes at a time, as escapeGeneric does,
// and returns how much it read and wrote. It stops before the first byte of
// a multi-byte or invalid UTF-8 sequence, which it leaves to the Go code,
// and when fewer than avx2MinSrc bytes are left to read or avx2MinDst bytes
// of room to write; it writes past the bytes it reports as written, but
// never past dstLen.
//
//go:noescape
func escapeAVX2(dst *byte, dstLen int, src *byte, srcLen int, table *[256]uint64) (read, written int)

// escape writes the JSON string contents of s into dst and returns how much
// of s it read and of dst it wrote; it stops early only when dst is nearly
// full. escapeAVX2 does the bulk of it; the Go code decodes the non-ASCII
// characters escapeAVX2 stops at and escapes the last bytes of s, or into
// the last bytes of dst.
func escape(dst []byte, s string) (read, written int) {
	i, j := 0, 0
	for useAVX2 && len(s)-i >= avx2MinSrc && len(dst)-j >= avx2MinDst {
		r, w := escapeAVX2(&dst[j], len(dst)-j, unsafe.StringData(s[i:]), len(s)-i, &escapeTable)
		i, j = i+r, j+w
		// Where escapeAVX2 stopped before a byte of 0x80 or more, copy or
		// replace the characters that start there, and go back to it after
		// them. Any other stop fails the loop's test.
		for i < len(s) && s[i] >= utf8.RuneSelf && j <= len(dst)-maxStep-1 {
			r, w := escapeOne(dst[j:], s[i:])
			i, j = i+r, j+w
		}
	}
	r, w := escapeGeneric(dst[j:], s[i:])
	return i + r, j + w
}
