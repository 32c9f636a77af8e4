package resolvers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/validator/core"
	"github.com/vektah/gqlparser/v2/validator/rules"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph"
	"github.com/rdev-hq/rdev/graph/model"
)

// The names of the limits, as a refused request's extensions.limit gives them.
const (
	limitNameTokens     = "tokens"
	limitNameDepth      = "depth"
	limitNameAliases    = "aliases"
	limitNameComplexity = "complexity"
	limitNameTimeout    = "timeout"
)

// limitError is the error of a request over one of the limits: INVALID_INPUT,
// with the limit's name in extensions.limit.
func limitError(limit, format string, args ...any) *gqlerror.Error {
	return &gqlerror.Error{
		Message: fmt.Sprintf(format, args...),
		// gqlgen answers an operation refused with a validation code with
		// 422, like every other invalid document; the error presenter then
		// gives it INVALID_INPUT.
		Extensions: map[string]any{"code": errcode.ValidationFailed, "limit": limit},
	}
}

// validationRules returns gqlparser's default rules plus the depth and alias
// limits (zero or less: none). Rules run when a document is first parsed; the
// result is cached with the document.
func validationRules(maxDepth, maxAliases int, suggestions bool) func() *rules.Rules {
	return func() *rules.Rules {
		r := rules.NewDefaultRules()
		if !suggestions {
			// gqlgen's SetDisableSuggestion swaps only the field and leaf
			// rules; these would still suggest argument, type and enum
			// value names, and input fields.
			for _, q := range []core.Rule{rules.KnownArgumentNamesRuleWithoutSuggestions, rules.KnownTypeNamesRuleWithoutSuggestions, rules.ValuesOfCorrectTypeRuleWithoutSuggestions} {
				r.RemoveRule(strings.TrimSuffix(q.Name, "WithoutSuggestions"))
				r.AddRule(q.Name, q.RuleFunc)
			}
		}
		if maxDepth > 0 {
			r.AddRule("MaxDepth", func(ev *core.Events, addError core.AddErrFunc) {
				ev.OnOperation(func(w *core.Walker, op *ast.OperationDefinition) {
					m := &shapeMeter{doc: w.Document, depth: map[string]int{}, aliases: map[string]int{}, busy: map[string]bool{}}
					if d := m.selectionDepth(op.SelectionSet); d > maxDepth {
						addError(limitErrorOption(limitNameDepth, "operation %s has depth %d, which exceeds the limit of %d (RDEV_MAX_DEPTH)", opName(op), d, maxDepth), core.At(op.Position))
					}
				})
			})
		}
		if maxAliases > 0 {
			r.AddRule("MaxAliases", func(ev *core.Events, addError core.AddErrFunc) {
				ev.OnOperation(func(w *core.Walker, op *ast.OperationDefinition) {
					m := &shapeMeter{doc: w.Document, depth: map[string]int{}, aliases: map[string]int{}, busy: map[string]bool{}}
					if n := m.selectionAliases(op.SelectionSet); n > maxAliases {
						addError(limitErrorOption(limitNameAliases, "operation %s has %d aliases, which exceeds the limit of %d (RDEV_MAX_ALIASES)", opName(op), n, maxAliases), core.At(op.Position))
					}
				})
			})
		}
		return r
	}
}

func opName(op *ast.OperationDefinition) string {
	if op.Name == "" {
		return "(anonymous)"
	}
	return op.Name
}

// limitErrorOption fills a validation error as limitError does. gqlgen then
// sets its code to GRAPHQL_VALIDATION_FAILED; the error presenter restores
// INVALID_INPUT for every error that names a limit.
func limitErrorOption(limit, format string, args ...any) core.ErrorOption {
	return func(err *gqlerror.Error) {
		err.Message = fmt.Sprintf(format, args...)
		err.Extensions = map[string]any{"code": domain.EINVALID, "limit": limit}
	}
}

// shapeMeter measures an operation with its fragments expanded. Each
// fragment is measured once (a fragment spread in many places would
// otherwise be walked exponentially often), and a fragment that spreads
// itself counts as nothing: NoFragmentCycles reports that.
type shapeMeter struct {
	doc     *ast.QueryDocument
	depth   map[string]int
	aliases map[string]int
	busy    map[string]bool
}

// selectionDepth is the deepest nesting of fields under set. Introspection
// fields do not count: gqlparser bounds their depth itself.
func (m *shapeMeter) selectionDepth(set ast.SelectionSet) int {
	deepest := 0
	for _, sel := range set {
		d := 0
		switch s := sel.(type) {
		case *ast.Field:
			if strings.HasPrefix(s.Name, "__") {
				continue
			}
			d = 1 + m.selectionDepth(s.SelectionSet)
		case *ast.InlineFragment:
			d = m.selectionDepth(s.SelectionSet)
		case *ast.FragmentSpread:
			d = m.fragment(s.Name, m.depth, m.selectionDepth)
		}
		deepest = max(deepest, d)
	}
	return deepest
}

// selectionAliases counts the aliased fields under set, a fragment once for
// every place it is spread.
func (m *shapeMeter) selectionAliases(set ast.SelectionSet) int {
	n := 0
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Alias != "" && s.Alias != s.Name {
				n = saturatingAdd(n, 1)
			}
			n = saturatingAdd(n, m.selectionAliases(s.SelectionSet))
		case *ast.InlineFragment:
			n = saturatingAdd(n, m.selectionAliases(s.SelectionSet))
		case *ast.FragmentSpread:
			n = saturatingAdd(n, m.fragment(s.Name, m.aliases, m.selectionAliases))
		}
	}
	return n
}

// fragment measures the named fragment with measure, remembering the result
// in memo.
func (m *shapeMeter) fragment(name string, memo map[string]int, measure func(ast.SelectionSet) int) int {
	if v, ok := memo[name]; ok {
		return v
	}
	f := m.doc.Fragments.ForName(name)
	if f == nil || m.busy[name] {
		return 0
	}
	m.busy[name] = true
	v := measure(f.SelectionSet)
	m.busy[name] = false
	memo[name] = v
	return v
}

func saturatingAdd(a, b int) int {
	if a > math.MaxInt-b {
		return math.MaxInt
	}
	return a + b
}

// complexityLimit refuses an operation whose cost, by the cost model of
// costs, exceeds max.
type complexityLimit struct {
	max int
	es  graphql.ExecutableSchema
	// known holds the costs of documents of one operation without
	// variables, by document: their cost depends on the document alone, so
	// a client repeating one (as most do) does not have it walked again.
	known graphql.Cache[int]
}

// complexityCacheSize is how many documents' costs complexityLimit keeps,
// as many as the handler's query cache keeps parsed documents.
const complexityCacheSize = 1000

func newComplexityLimit(limit int) *complexityLimit {
	return &complexityLimit{max: limit, known: lru.New[int](complexityCacheSize)}
}

var _ interface {
	graphql.OperationContextMutator
	graphql.HandlerExtension
} = &complexityLimit{}

// ExtensionName names the extension for gqlgen.
func (c *complexityLimit) ExtensionName() string { return "ComplexityLimit" }

// Validate keeps the schema the cost is computed against.
func (c *complexityLimit) Validate(es graphql.ExecutableSchema) error {
	c.es = es
	return nil
}

// MutateOperationContext computes the operation's cost with its variables.
func (c *complexityLimit) MutateOperationContext(ctx context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if cost := c.cost(ctx, rc); cost > c.max {
		return limitError(limitNameComplexity, "operation %s has complexity %d, which exceeds the limit of %d (RDEV_MAX_COMPLEXITY)", opName(rc.Operation), cost, c.max)
	}
	return nil
}

// cost returns the operation's cost, from known when its document has been
// seen.
func (c *complexityLimit) cost(ctx context.Context, rc *graphql.OperationContext) int {
	cacheable := rc.RawQuery != "" && rc.Doc != nil && len(rc.Doc.Operations) == 1 && len(rc.Operation.VariableDefinitions) == 0
	if cacheable {
		if cost, ok := c.known.Get(ctx, rc.RawQuery); ok {
			return cost
		}
	}
	cost := complexity.Calculate(ctx, c.es, rc.Operation, rc.Variables)
	if cacheable {
		c.known.Add(ctx, rc.RawQuery, cost)
	}
	return cost
}

// costs is the cost model: every field costs 1 plus what is selected under
// it, and a connection field costs 1 plus its page size (first, default
// domain.DefaultPageSize) times what is selected under it, since each of the
// up to first items is resolved.
func costs() graph.ComplexityRoot {
	var c graph.ComplexityRoot
	c.Query.Projects = func(child int, first *int, _ *string, _ *model.ProjectFilter) int {
		return connectionCost(child, first)
	}
	c.Query.APIKeys = func(child int, first *int, _ *string) int { return connectionCost(child, first) }
	c.Query.Commands = func(child int, _ *string, _ *domain.CommandStatus, first *int, _ *string) int {
		return connectionCost(child, first)
	}
	c.Query.AuditLog = func(child int, _ *model.AuditFilter, first *int, _ *string) int { return connectionCost(child, first) }
	c.Project.Commands = func(child int, _ *domain.CommandStatus, first *int) int { return connectionCost(child, first) }
	c.Query.Webhooks = func(child int, first *int, _ *string) int { return connectionCost(child, first) }
	c.Webhook.Deliveries = func(child int, first *int, _ *string) int { return connectionCost(child, first) }
	return c
}

// connectionCost is 1 plus page items times the cost of one item. A first
// out of range is refused by the resolver; it is charged as the largest page.
func connectionCost(child int, first *int) int {
	n := domain.DefaultPageSize
	if first != nil {
		n = min(max(*first, 0), domain.MaxPageSize)
	}
	if n > 0 && child > (math.MaxInt-1)/n {
		return math.MaxInt
	}
	return 1 + n*child
}

// operationTimeout bounds a query or mutation (subscriptions run as long as
// the client wants). A resolver whose context ends because of it fails with
// errOperationTimeout.
func operationTimeout(d time.Duration) graphql.OperationMiddleware {
	cause := &timeoutError{d: d}
	return func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		rc := graphql.GetOperationContext(ctx)
		if d <= 0 || rc.Operation == nil || rc.Operation.Operation == ast.Subscription {
			return next(ctx)
		}
		ctx, cancel := context.WithTimeoutCause(ctx, d, cause)
		h := next(ctx)
		return func(ctx context.Context) *graphql.Response {
			defer cancel()
			return h(ctx)
		}
	}
}

// timeoutError is the cause of an operation's context ending at its timeout.
type timeoutError struct{ d time.Duration }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("operation exceeded the timeout of %s (RDEV_OPERATION_TIMEOUT)", e.d)
}

// operationTimedOut reports the timeout that ended ctx, if one did.
func operationTimedOut(ctx context.Context) (*timeoutError, bool) {
	var te *timeoutError
	ok := errors.As(context.Cause(ctx), &te)
	return te, ok
}

// maxErrors is the most errors one response lists. A document repeating one
// mistake a thousand times would otherwise get a thousand errors back, an
// answer many times the size of the request.
const maxErrors = 20

// capErrors cuts a response's errors to maxErrors, saying how many were left
// out in a last one.
func capErrors(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
	r := next(ctx)
	if r == nil || len(r.Errors) <= maxErrors {
		return r
	}
	left := len(r.Errors) - maxErrors
	last := &gqlerror.Error{
		Message:    fmt.Sprintf("%d more errors left out", left),
		Extensions: map[string]any{"code": r.Errors[maxErrors].Extensions["code"]},
	}
	r.Errors = append(r.Errors[:maxErrors:maxErrors], last)
	return r
}
