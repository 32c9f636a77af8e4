//go:build tools

// Package tools pins the code generators that `make generate` runs, so their
// versions come from go.mod like every other dependency.
package tools

import (
	_ "github.com/99designs/gqlgen"
	_ "github.com/99designs/gqlgen/graphql/introspection"
)
