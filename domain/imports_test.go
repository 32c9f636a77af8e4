package domain_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDomainImportsStandardLibraryOnly keeps domain free of outside
// dependencies (DESIGN.md: "domain imports the standard library only").
// depguard enforces the same rule in `make lint`; this copy makes plain
// `go test` enforce it too. It checks every .go file under domain/, tests
// included, and treats an import as non-standard when the first element of
// its path contains a dot (as in "github.com/...") or when it is cgo's "C".
func TestDomainImportsStandardLibraryOnly(t *testing.T) {
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// The go tool ignores these directories too.
			name := d.Name()
			if path != "." && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Ext(path) != ".go" {
			return nil
		}
		files++
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			importPath, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if !isStandardLibrary(importPath) {
				t.Errorf("%s imports %q: domain may import only the standard library; put the dependency in an infra/ adapter behind a port",
					filepath.ToSlash(filepath.Join("domain", path)), importPath)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading domain sources: %v", err)
	}
	if files == 0 {
		t.Fatal("found no .go files under domain/; is the test running in the domain directory?")
	}
}

// isStandardLibrary reports whether importPath names a standard library
// package: the go tool reserves first path elements without a dot for it.
func isStandardLibrary(importPath string) bool {
	if importPath == "C" {
		return false
	}
	first, _, _ := strings.Cut(importPath, "/")
	return !strings.Contains(first, ".")
}
