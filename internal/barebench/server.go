// Package barebench is a bare gqlgen server, the baseline of rdev's edge
// benchmark (cmd/rdev BenchmarkEdge): a two-field schema served the way
// gqlgen's own examples serve one, so the benchmark shows what rdev's
// request path costs on top of gqlgen's. Its generated code comes from
// gqlgen.yml beside it (`make generate`).
package barebench

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
)

// NewHandler returns the server with the settings of gqlgen's default
// server (its query cache of 1000 documents, automatic persisted queries
// in a cache of 100, introspection), serving POST.
func NewHandler() http.Handler {
	srv := handler.New(NewExecutableSchema(Config{Resolvers: &Resolver{todos: []*Todo{
		{ID: "1", Text: "write the benchmark"}, {ID: "2", Text: "run it"},
	}}}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.Use(extension.Introspection{})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](100)})
	mux := http.NewServeMux()
	mux.Handle("/query", srv)
	return mux
}

// Resolver answers the schema's one query from a fixed list.
type Resolver struct {
	todos []*Todo
}

// Query returns the query resolver.
func (r *Resolver) Query() QueryResolver { return r }

// Todos returns every todo.
func (r *Resolver) Todos(context.Context) ([]*Todo, error) { return r.todos, nil }
