package resolvers

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/domain"
)

func TestHandler_RequestHygiene(t *testing.T) {
	ts := newTestServer(t) // MaxBodyBytes 4096
	tests := []struct {
		name, method, ctype, query string
		body                       io.Reader
		status                     int
		message                    string
	}{
		{"ChunkedBodyOverLimit", http.MethodPost, "application/json", "", io.MultiReader(strings.NewReader(`{"query":"{ viewer { id } }","x":"` + strings.Repeat("x", 5000) + `"}`)), http.StatusRequestEntityTooLarge, "exceeds the limit of 4096 bytes"},
		{"DeclaredBodyOverLimit", http.MethodPost, "application/json", "", strings.NewReader(strings.Repeat(" ", 5000)), http.StatusRequestEntityTooLarge, "request body of 5000 bytes"},
		{"Batch", http.MethodPost, "application/json", "", strings.NewReader(`[{"query":"{ viewer { id } }"}]`), http.StatusBadRequest, "batched operations"},
		{"NotJSON", http.MethodPost, "application/json", "", strings.NewReader(`{"query":`), http.StatusBadRequest, "not a GraphQL request"},
		{"TextPlain", http.MethodPost, "text/plain", "", strings.NewReader(`{ viewer { id } }`), http.StatusBadRequest, "unsupported request"},
		{"Delete", http.MethodDelete, "", "", nil, http.StatusBadRequest, "unsupported request"},
		{"GetMutation", http.MethodGet, "", "query=" + url.QueryEscape(`mutation { revokeAPIKey(input: {id: "x"}) { apiKey { id } } }`), nil, http.StatusMethodNotAllowed, "GET runs only queries"},
		{"GetBadVariables", http.MethodGet, "", "query=" + url.QueryEscape(`{ viewer { id } }`) + "&variables=nope", nil, http.StatusBadRequest, "variables could not be decoded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, ts.URL+"/graphql?"+tt.query, tt.body)
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			req.Header.Set("Authorization", "Bearer "+ts.admin)
			r := ts.do(t, req)
			if r.status != tt.status || r.code() != domain.EINVALID || len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Message, tt.message) {
				t.Fatalf("got %d %v; want %d INVALID_INPUT %q", r.status, r.Errors, tt.status, tt.message)
			}
			if tt.status == http.StatusMethodNotAllowed && r.header.Get("Allow") != "POST" {
				t.Errorf("Allow: %q", r.header.Get("Allow"))
			}
		})
	}
	t.Run("ErrorsCapped", func(t *testing.T) {
		var q strings.Builder
		q.WriteString("{ ")
		for range 100 {
			q.WriteString("viewer { nope } ")
		}
		q.WriteString("}")
		r := ts.query(t, ts.admin, q.String(), nil)
		if len(r.Errors) != maxErrors+1 || !strings.Contains(r.Errors[maxErrors].Message, "more errors left out") || r.Errors[maxErrors].Extensions["code"] == nil {
			t.Fatalf("%d errors, last %v", len(r.Errors), r.Errors[len(r.Errors)-1])
		}
	})
}
