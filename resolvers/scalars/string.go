// Package scalars holds the encodings of GraphQL scalars that rdev binds in
// place of gqlgen's own (see gqlgen.yml).
package scalars

import (
	"bytes"
	"io"
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
	return graphql.WriterFunc(func(w io.Writer) { writeString(w, s) })
}

// UnmarshalString decodes a String input as gqlgen does.
func UnmarshalString(v any) (string, error) {
	return graphql.UnmarshalString(v)
}

var bufPool = sync.Pool{New: func() any { return new([]byte) }}

func writeString(w io.Writer, s string) {
	if b, ok := w.(*bytes.Buffer); ok {
		// Encode straight into the buffer's free space.
		b.Grow(len(s) + 2)
		_, _ = b.Write(AppendString(b.AvailableBuffer(), s))
		return
	}
	bp := bufPool.Get().(*[]byte)
	*bp = AppendString((*bp)[:0], s)
	_, _ = w.Write(*bp)
	bufPool.Put(bp)
}

// plain marks the bytes that stand for themselves inside a JSON string.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hex = "0123456789abcdef"

// AppendString appends s to b as a JSON string.
func AppendString(b []byte, s string) []byte {
	b = slices.Grow(b, len(s)+2)
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
