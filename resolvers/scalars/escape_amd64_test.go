//go:build !purego

package scalars

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"
)

func TestEscapeAVX2Room(t *testing.T) {
	if asmRoom != avx2MinDst {
		t.Fatalf("the tests try dst about %d bytes long; escapeAVX2 needs %d", asmRoom, avx2MinDst)
	}
}

func TestEscapeAVX2Used(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 and BMI1 here: escape is escapeGeneric")
	}
	// A plain run and a run of escapes are read by escapeAVX2 but for
	// its last 63 bytes at most.
	for _, s := range []string{strings.Repeat("abcdefgh", 64), strings.Repeat("\"\n\x00", 64)} {
		dst := make([]byte, 6*len(s))
		r, _ := escapeAVX2(&dst[0], len(dst), &[]byte(s)[0], len(s), avx2Tab)
		if r <= len(s)-avx2MinSrc {
			t.Errorf("escapeAVX2 read %d of %d bytes of %.16q…", r, len(s), s)
		}
	}
}

// TestEscapeTable checks that each entry of avx2Tab.escapes holds escapeOne's
// escape, with its length in the top byte, and the others are empty.
func TestEscapeTable(t *testing.T) {
	for c := range 256 {
		e := avx2Tab.escapes[c]
		if c >= 0x20 && c != '"' && c != '\\' {
			if e != 0 {
				t.Errorf("escapeTable[%#x] = %#x, want 0", c, e)
			}
			continue
		}
		var want [maxStep + 1]byte
		_, n := escapeOne(want[:], string(rune(c)))
		got := make([]byte, 8)
		for k := range got {
			got[k] = byte(e >> (8 * k))
		}
		if int(e>>56) != n || !bytes.Equal(got[:n], want[:n]) {
			t.Errorf("escapeTable[%#x] = %q (length %d), want %q", c, got[:7], e>>56, want[:n])
		}
	}
}

// TestEscapeAVX2Stops checks where escapeAVX2 stops: near the end of src or
// dst, or before a byte of 0x80 or more, having written what escapeGeneric
// writes for what it read. (Stopping before another byte would make escape
// loop for ever.)
func TestEscapeAVX2Stops(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 here")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(s string, room int) {
		if len(s) == 0 {
			return
		}
		dst := make([]byte, room)
		r, w := escapeAVX2(unsafe.SliceData(dst), len(dst), unsafe.StringData(s), len(s), avx2Tab)
		switch {
		case r < 0 || r > len(s) || w < 0 || w > room:
			t.Fatalf("escapeAVX2(%q) into %d bytes: read %d, wrote %d", s, room, r, w)
		case len(s)-r >= avx2MinSrc && room-w >= avx2MinDst && s[r] < utf8.RuneSelf:
			t.Fatalf("escapeAVX2(%q) into %d bytes stopped at %d, before %q", s, room, r, s[r])
		}
		if want := escapeWant(t, s[:r]); !bytes.Equal(dst[:w], want) {
			t.Fatalf("escapeAVX2(%q) into %d bytes read %d and wrote\n%q, want\n%q", s, room, r, dst[:w], want)
		}
	}
	for range 3000 {
		s := randomString(rng)
		check(s, 6*len(s)+avx2MinDst)
		check(s, avx2MinDst+rng.IntN(300))
	}
	for _, sp := range specials {
		for at := range 70 {
			s := strings.Repeat("x", at) + sp + strings.Repeat("y", 100)
			check(s, 6*len(s)+avx2MinDst)
		}
	}
}

// TestEscapeAVX2Copies checks that escapeAVX2 copies two- and three-byte
// sequences itself, but for those that start with 0xe0 or 0xed, wherever
// they lie within a block, and the escapes beside them.
func TestEscapeAVX2Copies(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 here")
	}
	for _, r := range []rune{0x80, 0xe9, 0x7ff, 0x1000, 0x2028, 0xcfff, 0xe000, 0xfffd, 0xffff} {
		c := string(r)
		for at := 0; at+len(c) <= 32; at++ {
			for _, s := range []string{
				strings.Repeat("x", at) + c + strings.Repeat("y", 200),
				strings.Repeat("\n", at) + c + strings.Repeat("\"", 200),
				strings.Repeat("\x01", at) + c + "\x01" + strings.Repeat("z", 200),
			} {
				dst := make([]byte, 6*len(s)+avx2MinDst)
				n, w := escapeAVX2(&dst[0], len(dst), unsafe.StringData(s), len(s), avx2Tab)
				if n < len(s)-avx2MinSrc-len(c) {
					t.Fatalf("escapeAVX2(%q) stopped at %d", s, n)
				}
				if want := escapeWant(t, s[:n]); !bytes.Equal(dst[:w], want) {
					t.Fatalf("escapeAVX2(%q) read %d and wrote\n%q, want\n%q", s, n, dst[:w], want)
				}
			}
		}
	}
}
