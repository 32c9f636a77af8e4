package resolvers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/rdev-hq/rdev/domain"
)

type testServer struct {
	*httptest.Server
	keys     *memKeys
	commands *memCommands
	svc      *domain.APIKeyService
	audit    *domain.AuditService
	logs     *bytes.Buffer
	admin    string // token with every scope
}

func newTestServer(t testing.TB, opts ...func(*Resolver)) *testServer {
	t.Helper()
	return newTestServerWith(t, nil, opts...)
}

// newTestServerWith is newTestServer with configure applied to its Config.
func newTestServerWith(t testing.TB, configure func(*Config), opts ...func(*Resolver)) *testServer {
	t.Helper()
	ts := &testServer{keys: newMemKeys(), logs: &bytes.Buffer{}}
	ts.audit = domain.NewAuditService(ts.keys, nil)
	ts.svc = domain.NewAPIKeyService(ts.keys, ts.audit, nil, nil)
	projects := &memProjects{projects: []*domain.Project{
		{ID: "alpha", Status: domain.ProjectRunning, Labels: map[string]string{"team": "a", "env": "dev"}},
		{ID: "beta", Status: domain.ProjectRunning, Labels: map[string]string{"team": "b"}},
		{ID: "gamma", Status: domain.ProjectPending},
	}}
	ts.commands = &memCommands{}
	for i, p := range []string{"alpha", "alpha", "alpha", "beta", "gamma"} {
		ts.commands.commands = append(ts.commands.commands, &domain.Command{
			ID: fmt.Sprintf("%016d", 9-i), ProjectID: p, Status: domain.CommandSucceeded, Argv: []string{"true"},
		})
	}
	root := &Resolver{
		ProjectService: domain.NewProjectService(projects, nopHub{}), APIKeyService: ts.svc,
		CommandService: domain.NewCommandService(ts.commands, projects, nopHub{}, nil, ts.audit, domain.DefaultCommandLimits, nil),
		AuditService:   ts.audit,
	}
	for _, opt := range opts {
		opt(root)
	}
	cfg := Config{
		Logger:         slog.New(slog.NewTextHandler(ts.logs, nil)),
		Introspection:  true,
		MaxBodyBytes:   4096,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	}
	if configure != nil {
		configure(&cfg)
	}
	h := NewHandler(root, cfg)
	ts.Server = httptest.NewServer(h)
	t.Cleanup(ts.Close)
	ts.admin = ts.createKey(t, "admin", domain.ScopeAdmin)
	return ts
}

// createKey makes a key as the operator and returns its token.
func (ts *testServer) createKey(t testing.TB, name string, scopes ...domain.Scope) string {
	t.Helper()
	_, token, err := ts.svc.Create(domain.NewOperatorContext(context.Background()), domain.CreateAPIKey{
		Name: name, Scopes: domain.Scopes(scopes).Strings(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
	status int
	header http.Header
}

func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

func (ts *testServer) do(t *testing.T, req *http.Request) gqlResponse {
	t.Helper()
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	var out gqlResponse
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("status %d, body not JSON: %s", res.StatusCode, body)
	}
	out.status, out.header = res.StatusCode, res.Header
	return out
}

func (ts *testServer) query(t *testing.T, token, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return ts.do(t, req)
}

func TestHandler_Auth(t *testing.T) {
	ts := newTestServer(t)
	const q = `{ projects { nodes { id } } }`
	reader := ts.createKey(t, "reader", domain.ScopeProjectsRead)
	keysOnly := ts.createKey(t, "keys", domain.ScopeKeysRead)

	t.Run("OK", func(t *testing.T) {
		r := ts.query(t, reader, q, nil)
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"alpha"`) {
			t.Fatalf("errors %v, data %s", r.Errors, r.Data)
		}
	})
	t.Run("ErrUnauthenticatedWithoutKey", func(t *testing.T) {
		r := ts.query(t, "", q, nil)
		if r.code() != domain.EUNAUTHENTICATED || r.status != http.StatusOK {
			t.Fatalf("got %d %q %v", r.status, r.code(), r.Errors)
		}
	})
	t.Run("ErrForbiddenWithoutScope", func(t *testing.T) {
		r := ts.query(t, keysOnly, q, nil)
		if r.code() != domain.EFORBIDDEN || !strings.Contains(r.Errors[0].Message, "projects:read") {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
	})
	bad := map[string]string{
		"malformed":     "rdev_nope",
		"wrongChecksum": reader[:len(reader)-1] + flip(reader[len(reader)-1]),
		"wrongScheme":   "Basic " + reader,
		"unknownKey":    foreignToken(t),
	}
	for name, token := range bad {
		t.Run("ErrUnauthenticated/"+name, func(t *testing.T) {
			before := ts.keys.storeCalls()
			body := strings.NewReader(`{"query":"{ projects { nodes { id } } }"}`)
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/graphql", body)
			req.Header.Set("Content-Type", "application/json")
			if strings.Contains(token, " ") {
				req.Header.Set("Authorization", token)
			} else {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			r := ts.do(t, req)
			if r.status != http.StatusUnauthorized || r.code() != domain.EUNAUTHENTICATED {
				t.Fatalf("got %d %q %v", r.status, r.code(), r.Errors)
			}
			if r.header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
			// A malformed token is refused before any lookup.
			if name != "unknownKey" && ts.keys.storeCalls() != before {
				t.Errorf("a %s token reached the store", name)
			}
		})
	}
	t.Run("ErrUnauthenticatedWhenRevoked", func(t *testing.T) {
		token := ts.createKey(t, "doomed", domain.ScopeProjectsRead)
		id, _, _ := domain.ParseToken(token)
		r := ts.query(t, ts.admin, `mutation($id: ID!) { revokeAPIKey(input: {id: $id}) { apiKey { status } } }`, map[string]any{"id": id})
		if len(r.Errors) > 0 || !strings.Contains(string(r.Data), "REVOKED") {
			t.Fatalf("revoke: %v %s", r.Errors, r.Data)
		}
		if r := ts.query(t, token, q, nil); r.status != http.StatusUnauthorized || !strings.Contains(r.Errors[0].Message, "revoked") {
			t.Fatalf("revoked key still works: %d %v", r.status, r.Errors)
		}
	})
}

// foreignToken is a well-formed token of a key this server never issued.
func foreignToken(t *testing.T) string {
	_, token, err := domain.NewAPIKeyService(newMemKeys(), nil, nil, nil).Create(domain.NewOperatorContext(t.Context()),
		domain.CreateAPIKey{Name: "elsewhere", Scopes: []string{"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

func flip(c byte) string {
	if c == 'a' {
		return "b"
	}
	return "a"
}

func TestHandler_AllowedCIDRs(t *testing.T) {
	ts := newTestServer(t)
	r := ts.query(t, ts.admin, `mutation { createAPIKey(input: {name: "office", scopes: [PROJECTS_READ], allowedCIDRs: ["203.0.113.0/24"]}) { token } }`, nil)
	var data struct {
		CreateAPIKey struct{ Token string }
	}
	if err := json.Unmarshal(r.Data, &data); err != nil || data.CreateAPIKey.Token == "" {
		t.Fatalf("create: %v %s", r.Errors, r.Data)
	}
	call := func(xff string) gqlResponse {
		body := strings.NewReader(`{"query":"{ viewer { name } }"}`)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/graphql", body)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+data.CreateAPIKey.Token)
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		return ts.do(t, req)
	}
	// The test client connects from 127.0.0.1, a trusted proxy here, so
	// X-Forwarded-For decides the client address.
	if r := call(""); r.code() != domain.EFORBIDDEN || r.status != http.StatusForbidden {
		t.Errorf("from loopback: got %d %q", r.status, r.code())
	}
	if r := call("203.0.113.9"); len(r.Errors) > 0 {
		t.Errorf("from an allowed address: %v", r.Errors)
	}
	if r := call("203.0.113.9, 198.51.100.1"); r.code() != domain.EFORBIDDEN {
		t.Errorf("the nearest untrusted hop must count: got %q", r.code())
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct", "198.51.100.7:5000", "", "198.51.100.7"},
		{"untrusted peer's header ignored", "198.51.100.7:5000", "1.2.3.4", "198.51.100.7"},
		{"trusted proxy", "10.1.1.1:5000", "203.0.113.5", "203.0.113.5"},
		{"proxy chain", "10.1.1.1:5000", "203.0.113.5, 10.2.2.2", "203.0.113.5"},
		{"spoofed left entry ignored", "10.1.1.1:5000", "6.6.6.6, 203.0.113.5", "203.0.113.5"},
		{"garbage hop stops the walk", "10.1.1.1:5000", "203.0.113.5, nonsense", "10.1.1.1"},
		{"ipv6 proxy", "[::1]:5000", "2001:db8::9", "2001:db8::9"},
		{"mapped ipv4", "[::ffff:198.51.100.7]:1", "", "198.51.100.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			if tt.xff != "" {
				r.Header.Set("X-Forwarded-For", tt.xff)
			}
			if got := clientAddr(r, trusted); got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestHandler_Errors(t *testing.T) {
	ts := newTestServer(t)
	t.Run("NotFound", func(t *testing.T) {
		r := ts.query(t, ts.admin, `{ project(id: "nope") { id } }`, nil)
		if r.code() != domain.ENOTFOUND {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
	})
	t.Run("InternalHidden", func(t *testing.T) {
		r := ts.query(t, ts.admin, `{ project(id: "broken") { id } }`, nil)
		if r.code() != domain.EINTERNAL || r.Errors[0].Message != "internal error" {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
		if !strings.Contains(ts.logs.String(), "connection refused") {
			t.Error("the internal error was not logged")
		}
	})
	t.Run("PanicRecovered", func(t *testing.T) {
		r := ts.query(t, ts.admin, `{ project(id: "panic") { id } }`, nil)
		if r.code() != domain.EINTERNAL || strings.Contains(r.Errors[0].Message, "secret") {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
		if r := ts.query(t, ts.admin, `{ project(id: "alpha") { id } }`, nil); len(r.Errors) > 0 {
			t.Fatalf("server stopped serving after a panic: %v", r.Errors)
		}
	})
	t.Run("ParseFailed", func(t *testing.T) {
		r := ts.query(t, ts.admin, `{ projects { nodes { id }`, nil)
		if r.code() != "GRAPHQL_PARSE_FAILED" {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
	})
	t.Run("ValidationFailed", func(t *testing.T) {
		r := ts.query(t, ts.admin, `{ projects { nodes { nosuchfield } } }`, nil)
		if r.code() != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
	})
	t.Run("BadVariable", func(t *testing.T) {
		r := ts.query(t, ts.admin, `query($n: Int) { projects(first: $n) { nodes { id } } }`, map[string]any{"n": "ten"})
		if r.code() == "" || r.code() == domain.EINTERNAL {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
	})
	t.Run("InvalidInput", func(t *testing.T) {
		for _, q := range []string{
			`{ projects(first: 1000) { nodes { id } } }`,
			`{ projects(after: "%%%") { nodes { id } } }`,
			`mutation { createAPIKey(input: {name: "", scopes: [ADMIN]}) { token } }`,
			`mutation { createAPIKey(input: {name: "x", scopes: [ADMIN], allowedCIDRs: ["10.0.0.0/33"]}) { token } }`,
			`mutation { createAPIKey(input: {name: "x", scopes: []}) { token } }`,
			`mutation { createAPIKey(input: {name: "x", scopes: [ADMIN], expiresAt: "2001-01-01T00:00:00Z"}) { token } }`,
			`mutation { rotateAPIKey(input: {id: "x", gracePeriodSeconds: -1}) { token } }`,
		} {
			if r := ts.query(t, ts.admin, q, nil); r.code() != domain.EINVALID {
				t.Errorf("%s: got %q %v", q, r.code(), r.Errors)
			}
		}
	})
	t.Run("BodyTooLarge", func(t *testing.T) {
		big := `{"query":"{ viewer { id } }","variables":{"x":"` + strings.Repeat("a", 5000) + `"}}`
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL+"/graphql", strings.NewReader(big))
		req.Header.Set("Content-Type", "application/json")
		r := ts.do(t, req)
		if r.status != http.StatusRequestEntityTooLarge || r.code() != domain.EINVALID {
			t.Fatalf("got %d %q", r.status, r.code())
		}
	})
	t.Run("MutationOverGETRefused", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+"/graphql?query="+
			"mutation%7BrevokeAPIKey(input%3A%7Bid%3A%22x%22%7D)%7BapiKey%7Bid%7D%7D%7D", nil)
		req.Header.Set("Authorization", "Bearer "+ts.admin)
		if r := ts.do(t, req); len(r.Errors) == 0 || strings.Contains(string(r.Data), "apiKey") {
			t.Fatalf("a mutation ran over GET: %s", r.Data)
		}
	})
}

func TestHandler_APIKeys(t *testing.T) {
	ts := newTestServer(t)
	reader := ts.createKey(t, "limited", domain.ScopeKeysWrite, domain.ScopeProjectsRead)

	t.Run("ErrForbiddenEscalation", func(t *testing.T) {
		before := len(ts.keys.keys)
		r := ts.query(t, reader, `mutation { createAPIKey(input: {name: "sneaky", scopes: [ADMIN]}) { token } }`, nil)
		if r.code() != domain.EFORBIDDEN {
			t.Fatalf("got %q %v", r.code(), r.Errors)
		}
		if len(ts.keys.keys) != before {
			t.Error("an escalating key was stored")
		}
	})
	t.Run("CreateRotateList", func(t *testing.T) {
		r := ts.query(t, ts.admin, `mutation { createAPIKey(input: {name: "ci", scopes: [PROJECTS_READ, KEYS_READ], rateLimit: 5}) {
			token apiKey { id name scopes status rateLimit createdById allowedCIDRs } } }`, nil)
		var created struct {
			CreateAPIKey struct {
				Token  string
				APIKey struct {
					ID, Name, Status string
					Scopes           []string
					RateLimit        int
					CreatedByID      string
				}
			}
		}
		if err := json.Unmarshal(r.Data, &created); err != nil || len(r.Errors) > 0 {
			t.Fatalf("%v %s", r.Errors, r.Data)
		}
		k := created.CreateAPIKey.APIKey
		if k.Status != "ACTIVE" || k.RateLimit != 5 || len(k.Scopes) != 2 || k.CreatedByID == "" {
			t.Fatalf("unexpected key %+v", k)
		}
		if r := ts.query(t, created.CreateAPIKey.Token, `{ viewer { id } }`, nil); !strings.Contains(string(r.Data), k.ID) {
			t.Fatalf("viewer: %v %s", r.Errors, r.Data)
		}
		r = ts.query(t, ts.admin, `mutation($id: ID!) { rotateAPIKey(input: {id: $id, gracePeriodSeconds: 60}) { token apiKey { previousSecretExpiresAt } } }`, map[string]any{"id": k.ID})
		var rotated struct{ RotateAPIKey struct{ Token string } }
		if err := json.Unmarshal(r.Data, &rotated); err != nil || len(r.Errors) > 0 {
			t.Fatalf("%v %s", r.Errors, r.Data)
		}
		for _, token := range []string{created.CreateAPIKey.Token, rotated.RotateAPIKey.Token} {
			if r := ts.query(t, token, `{ viewer { id } }`, nil); len(r.Errors) > 0 {
				t.Errorf("token should work during the grace period: %v", r.Errors)
			}
		}
		r = ts.query(t, created.CreateAPIKey.Token, `{ apiKeys(first: 1) { edges { cursor } pageInfo { hasNextPage endCursor } } }`, nil)
		var page struct {
			APIKeys struct {
				PageInfo struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
		if err := json.Unmarshal(r.Data, &page); err != nil || !page.APIKeys.PageInfo.HasNextPage {
			t.Fatalf("%v %s", r.Errors, r.Data)
		}
		r = ts.query(t, created.CreateAPIKey.Token, `query($a: String) { apiKeys(first: 100, after: $a) { nodes { id } pageInfo { hasPreviousPage } } }`, map[string]any{"a": page.APIKeys.PageInfo.EndCursor})
		if len(r.Errors) > 0 || strings.Count(string(r.Data), `"id"`) != len(ts.keys.keys)-1 {
			t.Fatalf("second page: %v %s", r.Errors, r.Data)
		}
	})
}

func TestHandler_Projects(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name, query, want string
	}{
		{"all", `{ projects { nodes { id } } }`, `{"projects":{"nodes":[{"id":"alpha"},{"id":"beta"},{"id":"gamma"}]}}`},
		{"status", `{ projects(filter: {status: PENDING}) { nodes { id status } } }`, `{"projects":{"nodes":[{"id":"gamma","status":"PENDING"}]}}`},
		{"label", `{ projects(filter: {labels: [{key: "team", value: "b"}]}) { nodes { id } } }`, `{"projects":{"nodes":[{"id":"beta"}]}}`},
		{"labels sorted", `{ project(id: "alpha") { labels { key value } } }`, `{"project":{"labels":[{"key":"env","value":"dev"},{"key":"team","value":"a"}]}}`},
		{"first", `{ projects(first: 2) { nodes { id } pageInfo { hasNextPage hasPreviousPage } } }`, `{"projects":{"nodes":[{"id":"alpha"},{"id":"beta"}],"pageInfo":{"hasNextPage":true,"hasPreviousPage":false}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.query(t, ts.admin, tt.query, nil)
			if len(r.Errors) > 0 || string(r.Data) != tt.want {
				t.Fatalf("got %s %v\nwant %s", r.Data, r.Errors, tt.want)
			}
		})
	}
}

func TestHandler_Health(t *testing.T) {
	ts := newTestServer(t)
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/": 404} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+path, nil)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: got %d, want %d", path, res.StatusCode, want)
		}
	}
}

// postSSE posts the GraphQL request body as the admin key, asking for an
// event stream.
func (ts *testServer) postSSE(t *testing.T, ctx context.Context, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Authorization", "Bearer "+ts.admin)
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestHandler_SSE(t *testing.T) {
	ts := newTestServer(t)
	res := ts.postSSE(t, t.Context(), `{"query":"{ projects { nodes { id } } }"}`)
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q, body %s", ct, body)
	}
	if !strings.Contains(string(body), "event: next\ndata: {\"data\":{\"projects\"") || !strings.Contains(string(body), "event: complete") {
		t.Fatalf("unexpected stream: %s", body)
	}
}

// TestHandler_StreamOnlyForSubscriptions: a client that accepts an event
// stream and a single response alike (urql's fetch exchange sends this
// Accept with every operation) gets one response for a query or a mutation,
// in the negotiated media type with its status and rate headers, and an
// event stream for a subscription.
func TestHandler_StreamOnlyForSubscriptions(t *testing.T) {
	const urqlAccept = "application/graphql-response+json, application/graphql+json, application/json, text/event-stream, multipart/mixed"
	ts := newTestServer(t)
	post := func(ctx context.Context, accept, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/graphql", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", accept)
		req.Header.Set("Authorization", "Bearer "+ts.admin)
		res, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, tc := range []struct{ name, accept, body, wantType string }{
		{"Query", urqlAccept, `{"query":"{ projects { nodes { id } } }"}`, mediaGraphQLResponse},
		{"RefusedQuery", urqlAccept, `{"query":"{ nope }"}`, mediaGraphQLResponse},
		{"QueryJSONFirst", "application/json, text/event-stream", `{"query":"{ __typename }"}`, mediaJSON},
		{"QueryStreamOnly", "text/event-stream", `{"query":"{ __typename }"}`, "text/event-stream"},
		{"QueryJSONRefused", "text/event-stream, application/json;q=0", `{"query":"{ __typename }"}`, "text/event-stream"},
		{"Subscription", urqlAccept, `{"query":"subscription { projectStatus { id } }"}`, "text/event-stream"},
		{"NamedSubscription", urqlAccept, `{"query":"query Q { __typename } subscription S { projectStatus { id } }","operationName":"S"}`, "text/event-stream"},
		{"NamedQuery", urqlAccept, `{"query":"query Q { __typename } subscription S { projectStatus { id } }","operationName":"Q"}`, mediaGraphQLResponse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			res := post(ctx, tc.accept, tc.body)
			defer func() { _ = res.Body.Close() }()
			mt, _, _ := strings.Cut(res.Header.Get("Content-Type"), ";")
			if mt != tc.wantType {
				b, _ := io.ReadAll(res.Body)
				t.Fatalf("Content-Type %q, want %s: %d %s", res.Header.Get("Content-Type"), tc.wantType, res.StatusCode, b)
			}
			if tc.wantType == "text/event-stream" {
				return
			}
			b, _ := io.ReadAll(res.Body)
			wantStatus := http.StatusOK
			if tc.name == "RefusedQuery" {
				wantStatus = http.StatusBadRequest
			}
			if res.StatusCode != wantStatus || !strings.HasPrefix(string(b), "{") {
				t.Fatalf("%d %s, want %d and one JSON response", res.StatusCode, b, wantStatus)
			}
		})
	}
}

// TestHandler_ProjectCommandsBatched checks that Project.commands loads the
// commands of every project in one store query, not one per project.
func TestHandler_ProjectCommandsBatched(t *testing.T) {
	ts := newTestServer(t)
	r := ts.query(t, ts.admin, `{ projects { nodes { id commands(first: 2) { nodes { id } pageInfo { hasNextPage } } } } }`, nil)
	if len(r.Errors) > 0 {
		t.Fatalf("%+v", r.Errors)
	}
	if n := ts.commands.calls(); n != 1 {
		t.Errorf("%d store queries for three projects' commands, want 1", n)
	}
	want := `{"projects":{"nodes":[` +
		`{"id":"alpha","commands":{"nodes":[{"id":"0000000000000009"},{"id":"0000000000000008"}],"pageInfo":{"hasNextPage":true}}},` +
		`{"id":"beta","commands":{"nodes":[{"id":"0000000000000006"}],"pageInfo":{"hasNextPage":false}}},` +
		`{"id":"gamma","commands":{"nodes":[{"id":"0000000000000005"}],"pageInfo":{"hasNextPage":false}}}]}}`
	if string(r.Data) != want {
		t.Errorf("got  %s\nwant %s", r.Data, want)
	}
	// Without commands:read the field is refused, the rest still answers.
	reader := ts.createKey(t, "projects-only", domain.ScopeProjectsRead)
	r = ts.query(t, reader, `{ projects { nodes { id commands { nodes { id } } } } }`, nil)
	if r.code() != domain.EFORBIDDEN {
		t.Errorf("without commands:read: %+v", r)
	}
}
