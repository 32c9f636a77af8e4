package resolvers

import (
	"testing"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph"
)

// TestSchema_EveryRootFieldDecidesAccess fails when a Query, Mutation or
// Subscription field has no explicit access decision: @hasScope with a
// known scope, or @authenticated. What each field does under a key's
// project scope is decided by cmd/rdev's TestSchema_EveryFieldHonoursProjectScope,
// a matrix run on the real server, which fails for a field it lacks.
func TestSchema_EveryRootFieldDecidesAccess(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &Resolver{}}).Schema()
	roots := []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription}
	checked := 0
	for _, root := range roots {
		if root == nil {
			continue
		}
		for _, f := range root.Fields {
			if len(f.Name) > 1 && f.Name[:2] == "__" {
				continue
			}
			checked++
			scope := f.Directives.ForName("hasScope")
			auth := f.Directives.ForName("authenticated")
			switch {
			case scope != nil && auth != nil:
				t.Errorf("%s.%s: has both @hasScope and @authenticated; pick one", root.Name, f.Name)
			case scope != nil:
				arg := scope.Arguments.ForName("scope")
				if arg == nil || arg.Value == nil {
					t.Errorf("%s.%s: @hasScope without a scope", root.Name, f.Name)
					continue
				}
				if !knownScopeEnum(arg.Value.Raw) {
					t.Errorf("%s.%s: @hasScope(scope: %s) names no known scope", root.Name, f.Name, arg.Value.Raw)
				}
			case auth != nil:
			default:
				t.Errorf("%s.%s: no access decision: add @hasScope(scope: …) or @authenticated", root.Name, f.Name)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no root fields found: the schema did not load")
	}
}

// knownScopeEnum maps the GraphQL enum names to domain scopes.
func knownScopeEnum(name string) bool {
	for _, s := range domain.AllScopes {
		if scopeEnumName(s) == name {
			return true
		}
	}
	return false
}

// TestSchema_ScopeEnumMatchesDomain keeps the GraphQL Scope enum and
// domain.AllScopes in step.
func TestSchema_ScopeEnumMatchesDomain(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &Resolver{}}).Schema()
	enum := schema.Types["Scope"]
	if enum == nil {
		t.Fatal("no Scope enum in the schema")
	}
	if got, want := len(enum.EnumValues), len(domain.AllScopes); got != want {
		t.Fatalf("Scope enum has %d values, domain has %d scopes", got, want)
	}
	for _, s := range domain.AllScopes {
		if enum.EnumValues.ForName(scopeEnumName(s)) == nil {
			t.Errorf("domain scope %q has no Scope enum value %s", s, scopeEnumName(s))
		}
	}
}

// scopeEnumName turns "keys:write" into "KEYS_WRITE".
func scopeEnumName(s domain.Scope) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c == ':':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// TestSchema_EverythingDescribed fails for a type, field, argument or enum
// value of our own without a description.
func TestSchema_EverythingDescribed(t *testing.T) {
	schema := graph.NewExecutableSchema(graph.Config{Resolvers: &Resolver{}}).Schema()
	for name, def := range schema.Types {
		if def.BuiltIn || len(name) > 1 && name[:2] == "__" {
			continue
		}
		if def.Description == "" {
			t.Errorf("type %s has no description", name)
		}
		for _, f := range def.Fields {
			if len(f.Name) > 1 && f.Name[:2] == "__" {
				continue
			}
			if f.Description == "" {
				t.Errorf("%s.%s has no description", name, f.Name)
			}
			for _, a := range f.Arguments {
				if a.Description == "" {
					t.Errorf("%s.%s(%s) has no description", name, f.Name, a.Name)
				}
			}
		}
		for _, v := range def.EnumValues {
			if v.Description == "" {
				t.Errorf("%s.%s has no description", name, v.Name)
			}
		}
	}
}
