package graphiql_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/rdev-hq/rdev/internal/testenv"
	"github.com/rdev-hq/rdev/resolvers/graphiql"
)

func get(t *testing.T, h http.Handler, path string, header http.Header) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://rdev.example:8080"+path, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// TestHandler_Page: the page loads only files this handler serves, under
// a Content-Security-Policy that allows nothing else, and WebSockets to the
// same host only.
func TestHandler_Page(t *testing.T) {
	h := graphiql.New()
	w := get(t, h, "/", nil)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	csp := w.Header().Get("Content-Security-Policy")
	for _, want := range []string{
		"default-src 'self';",
		"connect-src 'self' ws://rdev.example:8080 wss://rdev.example:8080;",
		"style-src 'self';",
		"frame-ancestors 'none'",
	} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "*") {
		t.Errorf("Content-Security-Policy %q allows more than the server", csp)
	}

	page := w.Body.String()
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 6 {
		t.Fatalf("the page refers to %d files: %s", len(refs), page)
	}
	types := map[string]string{".js": "text/javascript", ".css": "text/css"}
	for _, m := range refs {
		ref := m[1]
		if ref == "data:," {
			continue
		}
		if !strings.HasPrefix(ref, graphiql.Path) {
			t.Errorf("the page refers to %q, not a file under %s", ref, graphiql.Path)
			continue
		}
		w := get(t, h, ref, nil)
		ct := w.Header().Get("Content-Type")
		if w.Code != http.StatusOK || w.Body.Len() == 0 || !strings.HasPrefix(ct, types[filepath.Ext(ref)]) {
			t.Errorf("GET %s: %d, %d bytes, %q", ref, w.Code, w.Body.Len(), ct)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", ref)
		}
	}
}

// TestHandler_Files: the licences are served, unknown names are 404, and an
// unchanged file is a 304.
func TestHandler_Files(t *testing.T) {
	h := graphiql.New()
	w := get(t, h, graphiql.Path+"LICENSES.txt", nil)
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("LICENSES.txt: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	for _, pkg := range []string{"graphiql@4.1.2", "react@18.3.1", "react-dom@18.3.1", "@graphiql/plugin-explorer@4.0.6"} {
		if !strings.Contains(w.Body.String(), "\n"+pkg+" (MIT)\n") {
			t.Errorf("LICENSES.txt lacks %s", pkg)
		}
	}
	for _, path := range []string{graphiql.Path, graphiql.Path + "nope.js", graphiql.Path + "../graphiql.go", "/index.html"} {
		if w := get(t, h, path, nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, w.Code)
		}
	}

	js := get(t, h, graphiql.Path+"graphiql.min.js", nil)
	etag := js.Header().Get("ETag")
	if etag == "" || js.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("graphiql.min.js: ETag %q, Cache-Control %q", etag, js.Header().Get("Cache-Control"))
	}
	if w := get(t, h, graphiql.Path+"graphiql.min.js", http.Header{"If-None-Match": {etag}}); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match of the current ETag: %d, want 304", w.Code)
	}
	if w := get(t, h, graphiql.Path+"graphiql.min.js", http.Header{"If-None-Match": {`"other"`}}); w.Code != http.StatusOK {
		t.Errorf("If-None-Match of another ETag: %d, want 200", w.Code)
	}
}

// TestAssets_MatchLockfile runs `make graphiql-assets`'s copy into a
// temporary directory from the packages npm installed from the lockfile and
// compares: the embedded files are exactly the pinned packages' files.
func TestAssets_MatchLockfile(t *testing.T) {
	node, err := exec.LookPath("node")
	testenv.RequireService(t, "node", err)
	_, err = os.Stat(filepath.Join("npm", "node_modules", "graphiql"))
	testenv.RequireService(t, "GraphiQL's npm packages (run: npm ci --prefix resolvers/graphiql/npm)", err)

	out := filepath.Join(t.TempDir(), "assets")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "copy-assets.mjs", out)
	cmd.Dir = "npm"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy-assets.mjs: %v\n%s", err, b)
	}
	want := readDir(t, out)
	got := readDir(t, "assets")
	for name, b := range want {
		if g, ok := got[name]; !ok {
			t.Errorf("assets/%s is missing: run make graphiql-assets", name)
		} else if !bytes.Equal(g, b) {
			t.Errorf("assets/%s differs from the locked package's file: run make graphiql-assets", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("assets/%s comes from no locked package", name)
		}
	}
	served := graphiql.New().Files()
	for name := range got {
		if !slices.Contains(served, name) {
			t.Errorf("assets/%s is not served", name)
		}
	}
}

func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// TestPage_ExampleValidatesAgainstSchema: the operations GraphiQL opens
// with are valid against schema.graphqls, so a renamed field breaks this
// test, not a newcomer's first run.
func TestPage_ExampleValidatesAgainstSchema(t *testing.T) {
	js, err := os.ReadFile("rdev-graphiql.js")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)var defaultQuery = \[\n(.*?)\]\.join`).FindSubmatch(js)
	if m == nil {
		t.Fatal("rdev-graphiql.js has no defaultQuery array")
	}
	var lines []string
	// The array's items are double-quoted strings, JSON as they stand.
	if err := json.Unmarshal([]byte("["+strings.TrimRight(strings.TrimSpace(string(m[1])), ",")+"]"), &lines); err != nil {
		t.Fatalf("defaultQuery: %v", err)
	}
	doc := strings.Join(lines, "\n")
	src, err := os.ReadFile("../../schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(src)})
	if gerr != nil {
		t.Fatalf("schema: %v", gerr)
	}
	q, errs := gqlparser.LoadQueryWithRules(schema, doc, nil)
	if len(errs) > 0 {
		t.Fatalf("the example does not validate: %v\n%s", errs, doc)
	}
	var kinds []string
	for _, op := range q.Operations {
		kinds = append(kinds, string(op.Operation))
	}
	if want := []string{"query", "mutation", "subscription"}; !slices.Equal(kinds, want) {
		t.Errorf("the example's operations are %v, want %v", kinds, want)
	}
}
