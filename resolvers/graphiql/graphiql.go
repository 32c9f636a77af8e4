// Package graphiql serves the GraphiQL explorer from files embedded in the
// binary, so it works with no network: the prebuilt browser bundles of the
// npm packages pinned in npm/package-lock.json (copied into assets/ by `make
// graphiql-assets`), their licences (assets/LICENSES.txt), and rdev's page
// around them. The page's Content-Security-Policy lets it reach its own
// server only, WebSockets to the same host included.
package graphiql

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// Path is where the page's files are served; the page itself is at "/".
const Path = "/graphiql/"

//go:embed index.html rdev-graphiql.js rdev-graphiql.css assets
var embedded embed.FS

// file is one embedded file and the ETag of its content.
type file struct {
	content []byte
	etag    string
}

// Handler serves the page at "/" and its files under Path; mount it on both
// ("GET /{$}" and "GET "+Path).
type Handler struct {
	page  file
	files map[string]file // by name under Path
}

// New reads the embedded files once. It panics only if the binary was built
// without them, which the package's tests rule out.
func New() *Handler {
	h := &Handler{files: map[string]file{}}
	h.page = mustRead("index.html")
	for _, name := range []string{"rdev-graphiql.js", "rdev-graphiql.css"} {
		h.files[name] = mustRead(name)
	}
	assets, err := fs.ReadDir(embedded, "assets")
	if err != nil {
		panic(err)
	}
	for _, e := range assets {
		h.files[e.Name()] = mustRead(path.Join("assets", e.Name()))
	}
	return h
}

func mustRead(name string) file {
	b, err := embedded.ReadFile(name)
	if err != nil {
		panic(err)
	}
	sum := sha256.Sum256(b)
	return file{content: b, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// Files lists the names served under Path.
func (h *Handler) Files() []string {
	names := make([]string, 0, len(h.files))
	for name := range h.files {
		names = append(names, name)
	}
	return names
}

// ServeHTTP serves the page at "/" and a file under Path; anything else is
// 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// Revalidated on every load (a 304 when unchanged), so a new binary's
	// files are never mixed with an old one's.
	w.Header().Set("Cache-Control", "no-cache")
	if r.URL.Path == "/" {
		w.Header().Set("Content-Security-Policy", contentSecurityPolicy(r))
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.page.serve(w, r, "index.html")
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, Path)
	f, found := h.files[name]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	f.serve(w, r, name)
}

func (f file) serve(w http.ResponseWriter, r *http.Request, name string) {
	w.Header().Set("ETag", f.etag)
	if path.Ext(name) == ".txt" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.content))
}

// contentSecurityPolicy allows the page this server's files only, and
// connections to this server: 'self' for HTTP, and the same host under ws:
// or wss: for subscriptions (named, since not every browser counts them as
// 'self'). The stylesheets carry their fonts and icons as data: URLs, and
// GraphiQL's editors set inline styles.
func contentSecurityPolicy(r *http.Request) string {
	connect := "'self'"
	// Go's server has refused requests whose Host is not a valid host
	// header; one without a Host (HTTP/1.0) gets 'self' alone.
	if host := r.Host; host != "" && !strings.ContainsAny(host, "; ,'\"") {
		connect += " ws://" + host + " wss://" + host
	}
	return strings.Join([]string{
		"default-src 'self'",
		"connect-src " + connect,
		"img-src 'self' data:",
		"font-src 'self' data:",
		"style-src 'self'",
		"object-src 'none'",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
	}, "; ")
}
