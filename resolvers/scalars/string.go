// Package scalars holds the encodings of GraphQL scalars that rdev binds in
// place of gqlgen's own (see gqlgen.yml).
package scalars

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/bits"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
)

// MarshalString encodes a String as JSON. Unlike gqlgen's encoder it
// replaces invalid UTF-8 with U+FFFD, as encoding/json does, so a command's
// binary output can never make a response invalid JSON text (which browsers
// refuse in a WebSocket text frame), and it copies runs of plain characters
// at once, which is most of a command's output.
func MarshalString(s string) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { writeString(w, s, escape) })
}

// UnmarshalString decodes a String input as gqlgen does.
func UnmarshalString(v any) (string, error) {
	return graphql.UnmarshalString(v)
}

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

// writeString writes s to w as a JSON string, escaped by escape (escape
// itself, or escapeGeneric in the tests and benchmarks).
func writeString(w io.Writer, s string, escape func(dst []byte, s string) (read, written int)) {
	if b, ok := w.(*bytes.Buffer); ok {
		// Encode straight into the buffer's free space, made as large as
		// AppendString wants it.
		b.Grow(encodedSize(s))
		_, _ = b.Write(appendString(b.AvailableBuffer(), s, escape))
		return
	}
	bp := bufPool.Get().(*[]byte)
	*bp = appendString((*bp)[:0], s, escape)
	_, _ = w.Write(*bp)
	bufPool.Put(bp)
}

const hex = "0123456789abcdef"

// Word-at-a-time masks: a byte of ones, and the high bit of every byte.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// special returns a mask whose lowest set bit is the high bit of the first
// byte of the little-endian word w that a JSON string cannot hold as it is:
// a control character, '"', '\\', or a byte of a multi-byte (or invalid)
// UTF-8 sequence, which is checked on its own. It is zero when there is none.
// Bits above the lowest may be set for bytes that need nothing (a borrow
// carries into the next byte), so only the lowest counts.
func special(w uint64) uint64 {
	quote := w ^ (ones * '"')
	backslash := w ^ (ones * '\\')
	control := (w - ones*0x20) &^ w             // bytes below 0x20
	quote = (quote - ones) &^ quote             // bytes equal to '"'
	backslash = (backslash - ones) &^ backslash // bytes equal to '\\'
	return (control | quote | backslash | w) & highs
}

// AppendString appends s to b as a JSON string. Plain bytes are checked and
// copied many at a time (32 with AVX2 on amd64, eight otherwise); a
// command's output is mostly plain bytes, with a newline every few words.
func AppendString(b []byte, s string) []byte { return appendString(b, s, escape) }

// appendString is AppendString with the escape loop as a parameter, so that
// the tests and benchmarks can run the pure-Go loop on any machine.
func appendString(b []byte, s string, escape func(dst []byte, s string) (read, written int)) []byte {
	b = slices.Grow(b, encodedSize(s))
	b = append(b, '"')
	for {
		read, written := escape(b[len(b):cap(b)], s)
		b = b[:len(b)+written]
		if s = s[read:]; s == "" {
			return append(b, '"')
		}
		b = slices.Grow(b, encodedSize(s))
	}
}

// maxStep is the most bytes one step of escapeGeneric writes: a word, of
// which all but one byte may be plain, then that byte's escape (\u00XX).
const maxStep = 7 + 6

// escapeGeneric writes the JSON string contents of s into dst and returns
// how much of s it read and of dst it wrote; it stops early only when dst is
// nearly full. Its loop calls nothing for plain bytes and newlines. It is
// escape itself where there is no faster loop, and finishes what the faster
// loop leaves where there is one.
func escapeGeneric(dst []byte, s string) (read, written int) {
	i, j := 0, 0
	for i < len(s) && j <= len(dst)-maxStep-1 {
		if len(s)-i >= 8 {
			w := load64(s[i : i+8])
			// The whole word is stored; only its plain bytes are kept.
			binary.LittleEndian.PutUint64(dst[j:j+8], w)
			m := special(w)
			if m == 0 {
				i, j = i+8, j+8
				continue
			}
			k := bits.TrailingZeros64(m) / 8
			i, j = i+k, j+k
		} else if c := s[i]; c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' {
			dst[j] = c
			i, j = i+1, j+1
			continue
		}
		if s[i] == '\n' {
			dst[j], dst[j+1] = '\\', 'n'
			i, j = i+1, j+2
			continue
		}
		r, w := escapeOne(dst[j:], s[i:])
		i, j = i+r, j+w
	}
	return i, j
}

// escapeOne writes the JSON form of the character at the start of s, one
// that is not plain, into dst (which has room for maxStep bytes), and
// returns how many bytes it read and wrote.
func escapeOne(dst []byte, s string) (read, written int) {
	switch c := s[0]; {
	case c == '"' || c == '\\':
		return 1, copy(dst, []byte{'\\', c})
	case c == '\n':
		return 1, copy(dst, `\n`)
	case c == '\r':
		return 1, copy(dst, `\r`)
	case c == '\t':
		return 1, copy(dst, `\t`)
	case c < 0x20:
		return 1, copy(dst, []byte{'\\', 'u', '0', '0', hex[c>>4], hex[c&0xf]})
	}
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && size == 1 {
		return 1, copy(dst, `\ufffd`)
	}
	return size, copy(dst, s[:size])
}

// encodedSize is the room AppendString makes for s: s itself, with a
// newline in every eight bytes escaped, as numbered lines have, the quotes,
// and escape's margin. More escapes make it grow b again.
func encodedSize(s string) int { return len(s) + len(s)/8 + 2 + maxStep + 1 }

// load64 reads the eight bytes of s, which has exactly eight, as a
// little-endian word; the compiler makes it one load.
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
