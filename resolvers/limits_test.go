package resolvers

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph"
)

func TestHandler_Limits(t *testing.T) {
	ts := newTestServerWith(t, func(c *Config) {
		c.MaxDepth = 8
		c.MaxAliases = 5
		c.MaxComplexity = 1000
		c.ParserTokenLimit = 200
	})
	aliases := func(n int) string {
		var b strings.Builder
		b.WriteString("{ ")
		for i := range n {
			fmt.Fprintf(&b, "a%d: viewer { id } ", i)
		}
		return b.String() + "}"
	}
	tests := []struct {
		name, query string
		limit       string // "" for a query that must succeed
		message     string
	}{
		{"DepthOK", `{ projects(first: 2) { nodes { commands(first: 2) { nodes { project { commands(first: 2) { nodes { id } } } } } } } }`, "", ""},
		{"DepthOver", `{ projects { nodes { commands { nodes { project { commands { nodes { project { id } } } } } } } } }`, "depth", "has depth 9, which exceeds the limit of 8"},
		{"DepthThroughFragments", `{ projects { nodes { ...P } } } fragment P on Project { commands { nodes { project { ...Q } } } } fragment Q on Project { commands { nodes { project { id } } } }`, "depth", "has depth 9"},
		{"DepthIgnoresIntrospection", `{ __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }`, "", ""},
		{"AliasesOK", aliases(5), "", ""},
		{"AliasesOver", aliases(6), "aliases", "has 6 aliases, which exceeds the limit of 5"},
		{"AliasesCountedPerSpread", `{ a: viewer { ...K } b: viewer { ...K } } fragment K on APIKey { x: id y: id }`, "aliases", "has 6 aliases"},
		{"ComplexityOK", `{ projects { nodes { id status } } }`, "", ""},
		{"ComplexityByFirst", `{ projects(first: 100) { nodes { commands(first: 100) { nodes { id } } } } }`, "complexity", "has complexity 20201, which exceeds the limit of 1000"},
		{"ComplexityByVariable", `query($n: Int) { projects(first: $n) { nodes { id commands(first: $n) { nodes { id } } } } }`, "complexity", "exceeds the limit of 1000"},
		{"ComplexityAuditLog", `{ auditLog(first: 100) { nodes { seq at actor action target outcome hash prevHash errorCode requestId } } }`, "complexity", "has complexity 1101"},
		{"Tokens", "{ viewer { " + strings.Repeat("id ", 300) + "} }", "tokens", "exceeded token limit of 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.query(t, ts.admin, tt.query, map[string]any{"n": 50})
			if tt.limit == "" {
				if len(r.Errors) > 0 {
					t.Fatalf("errors: %v", r.Errors)
				}
				return
			}
			if len(r.Errors) != 1 || r.code() != domain.EINVALID || r.Errors[0].Extensions["limit"] != tt.limit {
				t.Fatalf("got %d %v, want one INVALID_INPUT error with limit %q", r.status, r.Errors, tt.limit)
			}
			if !strings.Contains(r.Errors[0].Message, tt.message) {
				t.Errorf("message %q does not say %q", r.Errors[0].Message, tt.message)
			}
		})
	}
	t.Run("FragmentCycle", func(t *testing.T) {
		r := ts.query(t, ts.admin, `{ viewer { ...A } } fragment A on APIKey { id ...B } fragment B on APIKey { name ...A }`, nil)
		if len(r.Errors) == 0 || !strings.Contains(r.Errors[0].Message, "Cannot spread fragment") {
			t.Fatalf("got %v", r.Errors)
		}
	})
}

// TestHandler_ComplexityRepeated: a document's cost is remembered only
// where it cannot change: a document without variables is refused (or
// answered) every time it comes, and one with variables is costed again
// with each request's values.
func TestHandler_ComplexityRepeated(t *testing.T) {
	ts := newTestServerWith(t, func(c *Config) { c.MaxComplexity = 1000 })
	const fixed = `{ projects(first: 100) { nodes { commands(first: 100) { nodes { id } } } } }`
	const variable = `query($n: Int) { projects(first: $n) { nodes { id commands(first: $n) { nodes { id } } } } }`
	for i, tc := range []struct {
		query string
		n     int
		over  bool
	}{
		{fixed, 0, true}, {fixed, 0, true},
		{`{ projects { nodes { id } } }`, 0, false}, {`{ projects { nodes { id } } }`, 0, false},
		{variable, 50, true}, {variable, 1, false}, {variable, 50, true},
	} {
		r := ts.query(t, ts.admin, tc.query, map[string]any{"n": tc.n})
		if over := len(r.Errors) == 1 && r.Errors[0].Extensions["limit"] == limitNameComplexity; over != tc.over || (!over && len(r.Errors) > 0) {
			t.Errorf("request %d (n=%d): errors %v, want refused: %v", i, tc.n, r.Errors, tc.over)
		}
	}
}

func TestHandler_FieldSuggestions(t *testing.T) {
	const q = `{ viewer { nme } }`
	for _, on := range []bool{false, true} {
		t.Run(fmt.Sprint(on), func(t *testing.T) {
			ts := newTestServerWith(t, func(c *Config) { c.FieldSuggestions = on })
			r := ts.query(t, ts.admin, q, nil)
			if len(r.Errors) != 1 || !strings.Contains(r.Errors[0].Message, `Cannot query field "nme"`) {
				t.Fatalf("got %v", r.Errors)
			}
			if got := strings.Contains(r.Errors[0].Message, "Did you mean"); got != on {
				t.Errorf("suggestions on=%v, message %q", on, r.Errors[0].Message)
			}
		})
	}
}

// TestHandler_NoSuggestionsAnywhere: with suggestions off, no validation
// error suggests anything: not a field, a type, an argument or an enum value.
func TestHandler_NoSuggestionsAnywhere(t *testing.T) {
	ts := newTestServerWith(t, func(c *Config) { c.FieldSuggestions = false })
	for name, q := range map[string]string{
		"Field":      `{ viewer { nme } }`,
		"Type":       `query($id: Strin!) { project(id: $id) { id } }`,
		"Argument":   `{ project(idd: "x") { id } }`,
		"EnumValue":  `{ commands(status: RUNNIN) { nodes { id } } }`,
		"InputField": `mutation { executeCommand(input: {projectId: "x", argvv: ["ls"]}) { command { id } } }`,
		"Fragment":   `{ viewer { ...on APIKe { id } } }`,
	} {
		r := ts.query(t, ts.admin, q, map[string]any{"id": "x"})
		if len(r.Errors) == 0 {
			t.Errorf("%s: no error", name)
			continue
		}
		for _, e := range r.Errors {
			if strings.Contains(e.Message, "Did you mean") {
				t.Errorf("%s: %q suggests with suggestions off", name, e.Message)
			}
		}
	}
}

func TestHandler_OperationTimeout(t *testing.T) {
	ts := newTestServerWith(t, func(c *Config) { c.OperationTimeout = 100 * time.Millisecond })
	r := ts.query(t, ts.admin, `{ project(id: "slow") { id } }`, nil)
	if len(r.Errors) != 1 || r.code() != domain.EUNAVAILABLE || r.Errors[0].Extensions["limit"] != "timeout" {
		t.Fatalf("got %d %v", r.status, r.Errors)
	}
	if msg := r.Errors[0].Message; !strings.Contains(msg, "timeout of 100ms") || strings.Contains(msg, "context") {
		t.Errorf("message %q", msg)
	}
	// The next operation gets its own time.
	if r := ts.query(t, ts.admin, `{ viewer { id } }`, nil); len(r.Errors) > 0 {
		t.Fatalf("after a timeout: %v", r.Errors)
	}
	if r.status != http.StatusOK {
		t.Errorf("status %d", r.status)
	}
}

func TestConnectionCost(t *testing.T) {
	n := func(i int) *int { return &i }
	tests := []struct {
		child int
		first *int
		want  int
	}{
		{2, nil, 1 + domain.DefaultPageSize*2},
		{2, n(0), 1},
		{2, n(5), 11},
		{2, n(-5), 1},
		{2, n(1 << 40), 1 + domain.MaxPageSize*2},
		{1 << 62, n(100), 1<<63 - 1},
	}
	for _, tt := range tests {
		if got := connectionCost(tt.child, tt.first); got != tt.want {
			t.Errorf("connectionCost(%d, %v) = %d, want %d", tt.child, tt.first, got, tt.want)
		}
	}
}

// FuzzValidationRules runs the depth and alias rules, with gqlparser's own,
// over arbitrary documents: none may panic or loop, however its fragments
// spread.
func FuzzValidationRules(f *testing.F) {
	schema := graph.NewExecutableSchema(graph.Config{}).Schema()
	for _, q := range []string{
		`{ viewer { id } }`,
		`{ a: viewer { ...K } b: viewer { ...K } } fragment K on APIKey { x: id y: id }`,
		`{ viewer { ...A } } fragment A on APIKey { id ...B } fragment B on APIKey { name ...A }`,
		`{ projects { nodes { commands { nodes { project { id } } } } } }`,
		`query { ... on Query { ... on Query { viewer { id } } } }`,
	} {
		f.Add(q)
	}
	rules := validationRules(5, 3, false)
	f.Fuzz(func(t *testing.T, q string) {
		doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: q}, 2000)
		if err != nil {
			return
		}
		for _, e := range validator.ValidateWithRules(schema, doc, rules()) {
			if limit, ok := e.Extensions["limit"]; ok && limit != "depth" && limit != "aliases" {
				t.Fatalf("unexpected limit %v", limit)
			}
		}
	})
}

func TestHandler_OperationTimeoutSparesSubscriptions(t *testing.T) {
	ts := newTestServerWith(t, func(c *Config) { c.OperationTimeout = 50 * time.Millisecond })
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	res := ts.postSSE(t, ctx, `{"query":"subscription { projectStatus(projectId: \"alpha\") { id status } }"}`)
	defer func() { _ = res.Body.Close() }()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var got []string
	deadline := time.After(500 * time.Millisecond) // ten operation timeouts
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("the stream ended: %q", got)
			}
			got = append(got, l)
			if strings.Contains(l, "complete") || strings.Contains(l, "errors") {
				t.Fatalf("the subscription ended or failed: %q", got)
			}
		case <-deadline:
			if !strings.Contains(strings.Join(got, "\n"), `"id":"alpha"`) {
				t.Fatalf("no first event: %q", got)
			}
			return
		}
	}
}

// TestHandler_PartialBatch: in a request of several executeCommand
// aliases where one fails, the others still return their commands (partial
// data, the error at its alias's path), so the client learns what ran.
func TestHandler_PartialBatch(t *testing.T) {
	ts := newTestServer(t)
	r := ts.query(t, ts.admin, `mutation {
		ok: executeCommand(input: {projectId: "alpha", argv: ["true"]}) { command { id status } }
		bad: executeCommand(input: {projectId: "nope", argv: ["true"]}) { command { id } }
	}`, nil)
	var data struct {
		OK *struct {
			Command struct{ ID, Status string }
		}
		Bad *struct{}
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatalf("data %s: %v", r.Data, err)
	}
	if data.OK == nil || data.OK.Command.ID == "" || data.Bad != nil {
		t.Errorf("data %s: want ok's command and bad null", r.Data)
	}
	if len(r.Errors) != 1 || r.code() != domain.ENOTFOUND || len(r.Errors[0].Path) != 1 || r.Errors[0].Path[0] != "bad" {
		t.Errorf("errors %+v: want NOT_FOUND at bad", r.Errors)
	}
}
