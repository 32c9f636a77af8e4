package scalars_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/rdev-hq/rdev/resolvers/scalars"
)

func TestMarshalString(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"a\"b\\c", `"a\"b\\c"`},
		{"1\n2\r\t", `"1\n2\r\t"`},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"héllo ✓ 😀", `"héllo ✓ 😀"`},
		{"bad \xff byte", `"bad \ufffd byte"`},
		{"cut \xe2\x9c", `"cut \ufffd\ufffd"`},
		{"</script>", `"</script>"`},
	} {
		var b bytes.Buffer
		scalars.MarshalString(tt.in).MarshalGQL(&b)
		if b.String() != tt.want {
			t.Errorf("MarshalString(%q) = %s, want %s", tt.in, b.String(), tt.want)
		}
	}
}

// TestAppendString_Grows checks long strings whose escapes outgrow the room
// AppendString makes at first, at every offset into a word.
func TestAppendString_Grows(t *testing.T) {
	for _, unit := range []string{"\x00", "\"\\", "é\xff", "a\tb\rc\u2028", "12345678\n"} {
		for pad := range 8 {
			s := strings.Repeat("x", pad) + strings.Repeat(unit, 3000)
			got := scalars.AppendString([]byte("prefix"), s)
			want, _ := json.Marshal(s)
			var ours, theirs string
			if err := json.Unmarshal(got[len("prefix"):], &ours); err != nil {
				t.Fatalf("%q×3000 after %d: %v", unit, pad, err)
			}
			_ = json.Unmarshal(want, &theirs)
			if ours != theirs || string(got[:len("prefix")]) != "prefix" {
				t.Fatalf("%q×3000 after %d: decodes differently from encoding/json's", unit, pad)
			}
		}
	}
}

// FuzzAppendString checks that any string encodes to valid JSON that
// decodes to what encoding/json makes of it.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\nb", "\"\\", "\xff\xfe", "€\x80", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := scalars.AppendString(nil, s)
		if !json.Valid(got) {
			t.Fatalf("AppendString(%q) = %s: not valid JSON", s, got)
		}
		var ours, theirs string
		want, _ := json.Marshal(s)
		if err := json.Unmarshal(got, &ours); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(want, &theirs); err != nil {
			t.Fatal(err)
		}
		if ours != theirs {
			t.Fatalf("AppendString(%q) decodes to %q, encoding/json's to %q", s, ours, theirs)
		}
	})
}

// BenchmarkMarshalString encodes 64 KiB chunks of a command's output:
// numbered lines, prose and JSON lines. It sets the default encoder and the
// pure-Go loop alone (which is all there is without AVX2, or with the
// purego tag) against gqlgen's own encoder as the baseline.
func BenchmarkMarshalString(b *testing.B) {
	for _, in := range []struct {
		name  string
		chunk string
	}{
		{"seq", scalars.SeqChunk()},
		{"prose", scalars.ProseChunk()},
		{"jsonl", scalars.JSONLinesChunk()},
	} {
		for _, bm := range []struct {
			name    string
			marshal func(string) graphql.Marshaler
		}{
			{"baseline=gqlgen", graphql.MarshalString},
			{"scalars", scalars.MarshalString},
			{"generic", scalars.MarshalStringGeneric},
		} {
			b.Run(in.name+"/"+bm.name, func(b *testing.B) {
				var buf bytes.Buffer
				b.SetBytes(int64(len(in.chunk)))
				for b.Loop() {
					buf.Reset()
					bm.marshal(in.chunk).MarshalGQL(&buf)
				}
			})
		}
	}
}
