package scalars

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
)

// MarshalStringGeneric is MarshalString with escapeGeneric alone, the pure-Go
// loop, so that the benchmarks can set it beside the faster one.
func MarshalStringGeneric(s string) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { writeString(w, s, escapeGeneric) })
}

// chunkSize is the size of a chunk of a command's output, as the local
// executor reads it.
const chunkSize = 64 << 10

// SeqChunk is a chunk of numbered lines, as seq prints them: a newline in
// every six bytes or so.
func SeqChunk() string {
	var b strings.Builder
	for i := 1; b.Len() < chunkSize; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('\n')
	}
	return b.String()
}

// ProseChunk is a chunk of text wrapped at 72 columns, with a tab and a
// pair of quotes now and then: few bytes to escape, in long plain runs.
func ProseChunk() string {
	const text = "The build of every package took less time than the last one, " +
		"because the cache held the objects of the packages that had not changed. " +
		"\tOnly the tests that depend on \"changed\" packages ran again; the others " +
		"printed (cached) and their old results. "
	var b strings.Builder
	for col := 0; b.Len() < chunkSize; {
		for word := range strings.SplitAfterSeq(text, " ") {
			if col+len(word) > 72 {
				b.WriteByte('\n')
				col = 0
			}
			b.WriteString(word)
			col += len(word)
		}
	}
	return b.String()
}

// JSONLinesChunk is a chunk of JSON lines, as an agent's stream prints
// them: many quotes, and backslashes for the newlines in its text.
func JSONLinesChunk() string {
	var b strings.Builder
	for i := 1; b.Len() < chunkSize; i++ {
		fmt.Fprintf(&b, `{"type":"assistant","message":{"content":[{"type":"text",`+
			`"text":"Step %d: ran the tests.\n\nAll of them passed in %d.%03ds."}]}}`+"\n", i, i%7, i%1000)
	}
	return b.String()
}
