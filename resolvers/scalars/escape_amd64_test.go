//go:build !purego

package scalars

import (
	"bytes"
	"strings"
	"testing"
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
		r, _ := escapeAVX2(&dst[0], len(dst), &[]byte(s)[0], len(s), &escapeTable)
		if r <= len(s)-avx2MinSrc {
			t.Errorf("escapeAVX2 read %d of %d bytes of %.16q…", r, len(s), s)
		}
	}
}

// TestEscapeTable checks that each entry of escapeTable holds escapeOne's
// escape, with its length in the top byte, and the others are empty.
func TestEscapeTable(t *testing.T) {
	for c := range 256 {
		e := escapeTable[c]
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

