// Package docs holds rdev's guides; its test checks that every GraphQL
// example in them is valid against the schema the server serves.
package docs

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
)

// block is a fenced code block of a Markdown file.
type block struct {
	file string
	line int
	lang string
	text string
}

var fence = regexp.MustCompile("(?m)^```([a-z]*)\\n")

func blocks(t *testing.T, files []string) []block {
	t.Helper()
	var out []block
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for {
			m := fence.FindStringSubmatchIndex(s)
			if m == nil {
				break
			}
			lang := s[m[2]:m[3]]
			rest := s[m[1]:]
			end := strings.Index(rest, "\n```")
			if end < 0 {
				t.Fatalf("%s: a code block is not closed", f)
			}
			line := strings.Count(string(b[:len(b)-len(s)+m[0]]), "\n") + 1
			out = append(out, block{file: f, line: line, lang: lang, text: rest[:end+1]})
			s = rest[end+4:]
		}
	}
	return out
}

func markdownFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append(files, "../README.md")
}

// TestExamples_ValidateAgainstSchema parses and validates every ```graphql
// block of the guides and the README against schema.graphqls, and checks
// that every ```json block is JSON: a renamed field or argument breaks the
// build of the docs, not a reader's first try.
func TestExamples_ValidateAgainstSchema(t *testing.T) {
	src, err := os.ReadFile("../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(src)})
	if gerr != nil {
		t.Fatalf("schema: %v", gerr)
	}
	n := 0
	for _, b := range blocks(t, markdownFiles(t)) {
		switch b.lang {
		case "graphql":
			n++
			if _, errs := gqlparser.LoadQueryWithRules(schema, b.text, nil); len(errs) > 0 {
				t.Errorf("%s:%d: the example does not validate against the schema: %v\n%s", b.file, b.line, errs, b.text)
			}
		case "json":
			if !json.Valid([]byte(b.text)) {
				t.Errorf("%s:%d: the JSON example does not parse:\n%s", b.file, b.line, b.text)
			}
		}
	}
	if n < 10 {
		t.Errorf("found %d GraphQL examples; the guides hold more (is the fence pattern broken?)", n)
	}
}

// TestGuides_Exist checks that the guides the README points to are there and
// that their relative links resolve.
func TestGuides_Exist(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)#:]+)(#[^)]*)?\)`)
	for _, f := range markdownFiles(t) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := filepath.Join(filepath.Dir(f), m[1])
			if _, err := os.Stat(target); err != nil { //nolint:gosec // paths from the repository's own Markdown
				t.Errorf("%s links to %s, which does not exist", f, m[1])
			}
		}
	}
}
