package resolvers

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]string{
		"":                                  mediaJSON,
		"application/json":                  mediaJSON,
		"application/graphql-response+json": mediaGraphQLResponse,
		// Apollo Client
		"application/graphql-response+json,application/json;q=0.9": mediaGraphQLResponse,
		// urql
		"application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed": mediaGraphQLResponse,
		"application/json, application/graphql-response+json":                                                               mediaJSON,
		"application/json;q=0.5, application/graphql-response+json":                                                         mediaGraphQLResponse,
		"Application/GraphQL-Response+JSON; charset=utf-8":                                                                  mediaGraphQLResponse,
		"application/graphql-response+json;q=0, application/json":                                                           mediaJSON,
		"application/graphql-response+json;q=oops":                                                                          mediaJSON,
		"*/*":           mediaJSON,
		"application/*": mediaJSON,
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": mediaJSON,
		"text/plain":        mediaJSON,
		"text/event-stream": mediaJSON,
		",,;q=1, ;":         mediaJSON,
	} {
		if got := negotiate(accept); got != want {
			t.Errorf("negotiate(%q) = %s, want %s", accept, got, want)
		}
	}
}

// mediaAnswer is an answer as the media-type tests look at it.
type mediaAnswer struct {
	status      int
	contentType string
	hasData     bool
	codes       []string // extensions.code of each error
}

func (ts *testServer) mediaRequest(t *testing.T, method, accept, token, body string) mediaAnswer {
	t.Helper()
	var req *http.Request
	if method == http.MethodGet {
		req, _ = http.NewRequestWithContext(t.Context(), method, ts.URL+"/graphql?"+body, nil)
	} else {
		req, _ = http.NewRequestWithContext(t.Context(), method, ts.URL+"/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	var r struct {
		Data   json.RawMessage `json:"data"`
		Errors []gqlError      `json:"errors"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("status %d, body not JSON: %s", res.StatusCode, b)
	}
	a := mediaAnswer{status: res.StatusCode, contentType: res.Header.Get("Content-Type"), hasData: r.Data != nil}
	for _, e := range r.Errors {
		c, _ := e.Extensions["code"].(string)
		a.codes = append(a.codes, c)
	}
	return a
}

// Every answer is in the media type the request accepts; a request refused
// before its operation ran has no data and the status the GraphQL over HTTP
// specification gives its media type (200 under application/json if it was
// well-formed, 4xx under application/graphql-response+json); every error
// has a code.
func TestHandler_MediaTypes(t *testing.T) {
	ts := newTestServer(t)
	q := func(query string) string {
		b, _ := json.Marshal(map[string]string{"query": query})
		return string(b)
	}
	for _, tt := range []struct {
		name       string
		method     string
		token      string // the admin's if empty
		body       string
		json, gqlr int  // the status under application/json and under application/graphql-response+json
		data       bool // the answer has a data entry
		code       string
	}{
		{name: "OK", body: q(`{ viewer { id } }`), json: 200, gqlr: 200, data: true},
		{name: "FieldError", body: q(`{ project(id: "nope") { id } }`), json: 200, gqlr: 200, data: true, code: "NOT_FOUND"},
		{name: "ParseFailure", body: q(`{`), json: 200, gqlr: 400, code: "GRAPHQL_PARSE_FAILED"},
		{name: "ValidationFailure", body: q(`{ nope }`), json: 200, gqlr: 400, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "VariableCoercion", body: `{"query":"query($n: Int!) { projects(first: $n) { nodes { id } } }","variables":{"n":null}}`, json: 200, gqlr: 400, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "UnknownOperation", body: `{"query":"query A { viewer { id } }","operationName":"B"}`, json: 200, gqlr: 400, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "DepthLimit", body: q(`{ projects { nodes { commands { nodes { project { commands { nodes { project { commands { nodes { project { commands { nodes { id } } } } } } } } } } } } } }`), json: 200, gqlr: 400, code: "INVALID_INPUT"},
		{name: "ComplexityLimit", body: q(`{ projects(first: 100) { nodes { commands(first: 100) { nodes { id argv } } } } }`), json: 200, gqlr: 400, code: "INVALID_INPUT"},
		{name: "PersistedQueryNotFound", body: `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"` + strings.Repeat("0", 64) + `"}}}`, json: 200, gqlr: 400, code: "PERSISTED_QUERY_NOT_FOUND"},
		{name: "NoQuery", body: `{"qeury":"{ viewer { id } }"}`, json: 400, gqlr: 400, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "NullQuery", body: `{"query":null}`, json: 400, gqlr: 400, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "NotJSON", body: `{"query":`, json: 400, gqlr: 400, code: "INVALID_INPUT"},
		{name: "QueryNotAString", body: `{"query":5}`, json: 400, gqlr: 400, code: "INVALID_INPUT"},
		{name: "GET", method: http.MethodGet, body: "query=" + url.QueryEscape(`{ viewer { id } }`), json: 200, gqlr: 200, data: true},
		{name: "GETValidationFailure", method: http.MethodGet, body: "query=" + url.QueryEscape(`{ nope }`), json: 200, gqlr: 400, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "GETNoQuery", method: http.MethodGet, body: "", json: 400, gqlr: 400, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "GETMutation", method: http.MethodGet, body: "query=" + url.QueryEscape(`mutation { revokeAPIKey(input: {id: "x"}) { apiKey { id } } }`), json: 405, gqlr: 405, code: "INVALID_INPUT"},
		{name: "Unauthenticated", token: "rdev_nope", body: q(`{ viewer { id } }`), json: 401, gqlr: 401, code: "UNAUTHENTICATED"},
		{name: "BodyTooLarge", body: `{"query":"{ viewer { id } }","variables":{"x":"` + strings.Repeat("a", 5000) + `"}}`, json: 413, gqlr: 413, code: "INVALID_INPUT"},
	} {
		method, token := tt.method, tt.token
		if method == "" {
			method = http.MethodPost
		}
		if token == "" {
			token = ts.admin
		}
		for _, accept := range []string{"", "application/json", "*/*", "application/graphql-response+json", "application/graphql-response+json,application/json;q=0.9"} {
			t.Run(tt.name+"/"+accept, func(t *testing.T) {
				media, want := mediaJSON, tt.json
				if strings.HasPrefix(accept, mediaGraphQLResponse) {
					media, want = mediaGraphQLResponse, tt.gqlr
				}
				a := ts.mediaRequest(t, method, accept, token, tt.body)
				if a.status != want {
					t.Errorf("status %d, want %d (%v)", a.status, want, a.codes)
				}
				if a.contentType != media+"; charset=utf-8" {
					t.Errorf("Content-Type %q, want %s", a.contentType, media)
				}
				if a.hasData != tt.data {
					t.Errorf("data entry: %v, want %v", a.hasData, tt.data)
				}
				if tt.code != "" && (len(a.codes) == 0 || a.codes[0] != tt.code) {
					t.Errorf("codes %v, want %s first", a.codes, tt.code)
				}
				for _, c := range a.codes {
					if c == "" {
						t.Errorf("an error without extensions.code: %v", a.codes)
					}
				}
			})
		}
	}

}

// BenchmarkNegotiate measures what the edge spends on every request to
// pick its answer's media type.
func BenchmarkNegotiate(b *testing.B) {
	for _, accept := range []string{"", "application/json", acceptApollo, "application/graphql-response+json, application/json"} {
		b.Run(strings.ReplaceAll(accept, "/", "_"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = negotiate(accept)
			}
		})
	}
}
