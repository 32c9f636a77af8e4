package resolvers

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// persisted sends a request whose extensions carry the query's hash, with
// the query itself unless hashOnly, by POST or (get) GET.
func (ts *testServer) persisted(t *testing.T, query string, hashOnly, get bool) gqlResponse {
	t.Helper()
	ext := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": queryHash(query)}}
	var req *http.Request
	if get {
		extJSON, _ := json.Marshal(ext)
		v := url.Values{"extensions": {string(extJSON)}}
		if !hashOnly {
			v.Set("query", query)
		}
		req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/graphql?"+v.Encode(), nil)
	} else {
		body := map[string]any{"extensions": ext}
		if !hashOnly {
			body["query"] = query
		}
		b, _ := json.Marshal(body)
		req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/graphql", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+ts.admin)
	return ts.do(t, req)
}

func TestHandler_AutomaticPersistedQueries(t *testing.T) {
	ts := newTestServerWith(t, func(c *Config) { c.APQCacheSize = 2 })
	for _, get := range []bool{false, true} {
		name := map[bool]string{false: "POST", true: "GET"}[get]
		t.Run(name, func(t *testing.T) {
			q := `{ viewer { id name } } # ` + name
			r := ts.persisted(t, q, true, get)
			if len(r.Errors) != 1 || r.Errors[0].Message != "PersistedQueryNotFound" || r.code() != "PERSISTED_QUERY_NOT_FOUND" {
				t.Fatalf("unknown hash: %d %v", r.status, r.Errors)
			}
			if r := ts.persisted(t, q, false, get); len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"admin"`) {
				t.Fatalf("with the query: %v %s", r.Errors, r.Data)
			}
			if r := ts.persisted(t, q, true, get); len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"admin"`) {
				t.Fatalf("by hash after: %v %s", r.Errors, r.Data)
			}
		})
	}
	t.Run("ErrHashMismatch", func(t *testing.T) {
		b := `{"query":"{ viewer { id } }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + queryHash("{ x }") + `"}}}`
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/graphql", strings.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+ts.admin)
		if r := ts.do(t, req); len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Message, "hash does not match") || r.code() != "INVALID_INPUT" {
			t.Fatalf("got %v", r.Errors)
		}
	})
	t.Run("LeastRecentlyUsedDropped", func(t *testing.T) {
		first := `{ viewer { id } } # 1`
		ts.persisted(t, first, false, false)
		ts.persisted(t, `{ viewer { id } } # 2`, false, false)
		ts.persisted(t, `{ viewer { id } } # 3`, false, false)
		if r := ts.persisted(t, first, true, false); r.code() != "PERSISTED_QUERY_NOT_FOUND" {
			t.Fatalf("a cache of 2 kept the first of 3: %v", r.Errors)
		}
	})
}

func TestHandler_AutomaticPersistedQueriesOff(t *testing.T) {
	ts := newTestServerWith(t, func(c *Config) { c.APQCacheSize = -1 })
	q := `{ viewer { id } }`
	ts.persisted(t, q, false, false)
	// Without the extension, gqlgen sees a request with no query at all.
	if r := ts.persisted(t, q, true, false); len(r.Errors) == 0 || r.code() == "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("got %v", r.Errors)
	}
}

const trustedQuery = `query Viewer { viewer { id name } }`

func manifestOf(ops ...string) string {
	type op struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Type string `json:"type"`
		Body string `json:"body"`
	}
	m := struct {
		Format     string `json:"format"`
		Version    int    `json:"version"`
		Operations []op   `json:"operations"`
	}{Format: "apollo-persisted-query-manifest", Version: 1}
	for _, body := range ops {
		m.Operations = append(m.Operations, op{ID: queryHash(body), Name: "Op", Type: "query", Body: body})
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func TestHandler_TrustedDocuments(t *testing.T) {
	docs, err := ParseTrustedDocuments(strings.NewReader(manifestOf(trustedQuery)))
	if err != nil {
		t.Fatal(err)
	}
	for _, only := range []bool{false, true} {
		name := map[bool]string{false: "Allowed", true: "Only"}[only]
		t.Run(name, func(t *testing.T) {
			ts := newTestServerWith(t, func(c *Config) {
				c.TrustedDocuments, c.TrustedDocumentsOnly = docs, only
			})
			for _, get := range []bool{false, true} {
				if r := ts.persisted(t, trustedQuery, true, get); len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"admin"`) {
					t.Fatalf("trusted by hash (GET %v): %v %s", get, r.Errors, r.Data)
				}
			}
			if r := ts.query(t, ts.admin, trustedQuery, nil); len(r.Errors) > 0 {
				t.Fatalf("trusted in full: %v", r.Errors)
			}
			other := `{ viewer { id } }`
			r := ts.query(t, ts.admin, other, nil)
			if !only {
				if len(r.Errors) > 0 {
					t.Fatalf("untrusted without only: %v", r.Errors)
				}
				return
			}
			if len(r.Errors) != 1 || r.code() != "PERSISTED_QUERY_NOT_TRUSTED" || !strings.Contains(r.Errors[0].Message, "not a trusted document") {
				t.Fatalf("untrusted: %d %v", r.status, r.Errors)
			}
			// Neither can an untrusted query be registered or sent by hash.
			for _, hashOnly := range []bool{false, true} {
				if r := ts.persisted(t, other, hashOnly, false); r.code() != "PERSISTED_QUERY_NOT_TRUSTED" {
					t.Fatalf("untrusted APQ (hash only %v): %v", hashOnly, r.Errors)
				}
			}
		})
	}
}

func TestParseTrustedDocuments(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		td, err := ParseTrustedDocuments(strings.NewReader(manifestOf(trustedQuery, `{ viewer { id } }`)))
		if err != nil || td.Len() != 2 {
			t.Fatalf("got %v, %v", td, err)
		}
	})
	bad := map[string]struct{ manifest, want string }{
		"NotJSON":       {`{"format":`, "not a persisted-query manifest"},
		"WrongFormat":   {`{"format":"relay","version":1,"operations":[]}`, `format "relay"`},
		"WrongVersion":  {`{"format":"apollo-persisted-query-manifest","version":2,"operations":[]}`, "version 2"},
		"UnknownField":  {`{"format":"apollo-persisted-query-manifest","version":1,"operations":[],"extra":1}`, "unknown field"},
		"WrongType":     {`{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"x","name":"A","type":"fragment","body":"{ a }"}]}`, `type "fragment"`},
		"EmptyBody":     {`{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"x","name":"A","type":"query","body":""}]}`, "empty body"},
		"IDNotTheHash":  {`{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"abc","name":"A","type":"query","body":"{ a }"}]}`, `operation 0 (A): id "abc" is not the SHA-256 of its body`},
		"OperationsNot": {`{"format":"apollo-persisted-query-manifest","version":1,"operations":{}}`, "not a persisted-query manifest"},
	}
	for name, tt := range bad {
		t.Run("Err"+name, func(t *testing.T) {
			_, err := ParseTrustedDocuments(strings.NewReader(tt.manifest))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func FuzzParseTrustedDocuments(f *testing.F) {
	f.Add(manifestOf(trustedQuery))
	f.Add(`{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"abc","name":"A","type":"query","body":"{ a }"}]}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, manifest string) {
		td, err := ParseTrustedDocuments(strings.NewReader(manifest))
		if err != nil {
			return
		}
		// Whatever was accepted maps each hash to a body with that hash.
		for h, body := range td.byHash {
			if queryHash(body) != h {
				t.Fatalf("%q accepted under hash %s", body, h)
			}
		}
	})
}
