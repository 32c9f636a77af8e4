package resolvers

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHandler compares an authenticated GraphQL query through the whole
// edge (auth middleware, key lookup, parsing, directives, resolvers) with the
// baseline of a bare HTTP round trip to /healthz on the same server.
func BenchmarkHandler(b *testing.B) {
	ts := newTestServer(b)
	body := []byte(`{"query":"{ projects(first: 10) { nodes { id status labels { key value } } } }"}`)
	run := func(b *testing.B, newReq func() *http.Request) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				res, err := ts.Client().Do(newReq())
				if err != nil {
					b.Fatal(err)
				}
				_ = res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
	b.Run("baseline=healthz", func(b *testing.B) {
		run(b, func() *http.Request {
			req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, ts.URL+"/healthz", nil)
			return req
		})
	})
	b.Run("projects-query", func(b *testing.B) {
		run(b, func() *http.Request {
			req, _ := http.NewRequestWithContext(b.Context(), http.MethodPost, ts.URL+"/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+ts.admin)
			return req
		})
	})
	b.Run("projects-query-in-process", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/graphql", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+ts.admin)
			w := httptest.NewRecorder()
			ts.Config.Handler.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatalf("status %d", w.Code)
			}
		}
	})
}
