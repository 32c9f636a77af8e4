package resolvers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph"
	"github.com/rdev-hq/rdev/resolvers/graphiql"
)

// Defaults for Config's zero values.
const (
	DefaultMaxBodyBytes     = 1 << 20
	DefaultBodyTimeout      = 30 * time.Second
	DefaultParserTokenLimit = 15_000
	DefaultKeepAlive        = 15 * time.Second
	DefaultMaxComplexity    = 5000
	DefaultMaxDepth         = 12
	DefaultMaxAliases       = 50
	DefaultOperationTimeout = 30 * time.Second
	DefaultAPQCacheSize     = 1000
)

// Config shapes the HTTP edge. Zero values take the defaults above.
type Config struct {
	Logger *slog.Logger
	// GraphiQL serves the GraphiQL explorer at "/", from files embedded in
	// the binary (package graphiql).
	GraphiQL bool
	// Introspection allows __schema and __type queries.
	Introspection bool
	// FieldSuggestions lets validation errors suggest fields ("Did you
	// mean …?"), which tells a stranger about the schema.
	FieldSuggestions bool
	// MaxComplexity caps an operation's cost (see costs); negative: none.
	MaxComplexity int
	// MaxDepth caps the nesting of fields in an operation; negative: none.
	MaxDepth int
	// MaxAliases caps the aliased fields in an operation; negative: none.
	MaxAliases int
	// OperationTimeout bounds one query or mutation; negative: none.
	OperationTimeout time.Duration
	// APQCacheSize is how many automatic persisted queries are remembered;
	// negative turns automatic persisted queries off.
	APQCacheSize int
	// TrustedDocuments, if set, are operations clients may send by hash
	// alone.
	TrustedDocuments *TrustedDocuments
	// TrustedDocumentsOnly refuses every operation not in TrustedDocuments.
	TrustedDocumentsOnly bool
	// MaxBodyBytes caps a request body.
	MaxBodyBytes int64
	// BodyTimeout bounds how long a request body may take to arrive.
	BodyTimeout time.Duration
	// ParserTokenLimit caps the tokens in one GraphQL document.
	ParserTokenLimit int
	// TrustedProxies are the addresses whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// KeepAlive is the interval of WebSocket pings and SSE keep-alives.
	KeepAlive time.Duration
	// Websocket makes the WebSocket transport from the function that
	// authenticates a connection by its connection_init payload (an error
	// refuses it), the function that admits it once initialised (counts it
	// against ConnLimits) and the keep-alive interval. Nil disables
	// WebSocket.
	Websocket func(auth WebsocketAuth, admit WebsocketAdmit, keepAlive time.Duration) graphql.Transport
	// ConnLimits caps the WebSockets and SSE streams one caller holds open;
	// nil caps nothing.
	ConnLimits *domain.ConnLimits
	// Ready reports whether the server can serve: nil means ready.
	Ready func(context.Context) error
	// Extensions are added before every other extension and operation
	// interceptor, so they see every operation's answer (metrics).
	Extensions []graphql.HandlerExtension
	// Metrics, if set, is served at GET /metrics.
	Metrics http.Handler
	// AllowedOrigin reports whether a request's Origin header names a
	// page allowed to call the API from a browser (CORS); nil allows no
	// other origin. The WebSocket transport should check Origins with the
	// same function.
	AllowedOrigin func(*http.Request) bool
}

// NewHandler returns the HTTP handler for the whole API: /graphql (POST, GET
// for queries, WebSocket with graphql-transport-ws and graphql-ws, and SSE),
// GraphiQL at / (its files under /graphiql/, embedded) when enabled, /healthz, /readyz, and /metrics when given.
func NewHandler(root *Resolver, cfg Config) http.Handler {
	cfg = withDefaults(cfg)
	auth := &authenticator{keys: root.APIKeyService, limits: root.RateLimitService, trusted: cfg.TrustedProxies, log: cfg.Logger}

	srv := handler.New(graph.NewExecutableSchema(graph.Config{Resolvers: root, Directives: directives(root.AuditService), Complexity: costs()}))
	// The first transport that supports a request serves it, so SSE (a POST
	// that accepts text/event-stream) must come before POST.
	srv.AddTransport(eventStreams{transport.SSE{KeepAlivePingInterval: cfg.KeepAlive}})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(refusalsTold{transport.GET{}})
	srv.AddTransport(refusalsTold{transport.POST{}})
	if cfg.Websocket != nil {
		srv.AddTransport(cfg.Websocket(auth.websocketInit, admitSocket(cfg.ConnLimits), cfg.KeepAlive))
	}
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	srv.SetParserTokenLimit(cfg.ParserTokenLimit)
	srv.SetValidationRulesFn(validationRules(cfg.MaxDepth, cfg.MaxAliases, cfg.FieldSuggestions))
	srv.SetDisableSuggestion(!cfg.FieldSuggestions)
	srv.SetErrorPresenter(errorPresenter(cfg.Logger))
	srv.SetRecoverFunc(recoverFunc(cfg.Logger))
	for _, e := range cfg.Extensions {
		srv.Use(e)
	}
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		// An operation on a connection whose key stopped authorizing it
		// gets the reason (the transport is closing the connection).
		subscription := isSubscription(ctx)
		err := credentialEnded(ctx)
		var release func() // ends the subscription's place under its key's cap
		switch {
		case err != nil:
		case !subscription:
			err = chargeOperation(ctx, root.RateLimitService)
		case countedAtEdge(ctx):
		default:
			// A subscription is bounded by how many its key runs at once,
			// not charged to the request budget.
			release, err = cfg.ConnLimits.Open(domain.CallerFromContext(ctx), domain.ConnSubscription)
		}
		if err != nil {
			errs := gqlerror.List{{Message: domain.ErrorMessage(err), Extensions: errorExtensions(err)}}
			noteUnavailable(ctx, err, nil)
			refuse(ctx, errs, false)
			return graphql.OneShot(&graphql.Response{Errors: errs})
		}
		if !subscription {
			return next(withLoaders(ctx, newLoaders(root)))
		}
		if !domain.Guarded(ctx) {
			// A stream outside a guarded connection (SSE) ends on its own
			// when its key stops authorizing it.
			ctx = root.APIKeyService.Guard(ctx)
		}
		// Only a subscription's responses can end for want of one.
		responses := next(withStreamEnd(withLoaders(ctx, newLoaders(root))))
		if release == nil {
			return responses
		}
		context.AfterFunc(ctx, release)
		return releasedAtEnd(responses, release)
	})
	srv.AroundOperations(operationTimeout(cfg.OperationTimeout))
	srv.AroundOperations(logOperations(cfg.Logger))
	srv.AroundResponses(capErrors)
	srv.AroundResponses(endStreams)
	// Trusted documents come first: they fill in an operation sent by hash
	// before automatic persisted queries would call it unknown.
	if cfg.TrustedDocuments != nil {
		srv.Use(trustedDocuments{docs: cfg.TrustedDocuments, only: cfg.TrustedDocumentsOnly})
	}
	if cfg.APQCacheSize >= 0 {
		srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](cfg.APQCacheSize)})
	}
	if cfg.MaxComplexity >= 0 {
		srv.Use(newComplexityLimit(cfg.MaxComplexity))
	}
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	}

	mux := http.NewServeMux()
	mux.Handle("/graphql", &edge{auth: auth, cors: cors{allowed: cfg.AllowedOrigin}, limits: root.RateLimitService, conns: cfg.ConnLimits,
		maxBody: cfg.MaxBodyBytes, bodyTimeout: cfg.BodyTimeout, next: srv})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if cfg.Ready != nil {
			if err := cfg.Ready(r.Context()); err != nil {
				writeStatus(w, http.StatusServiceUnavailable, "not ready: "+domain.ErrorMessage(err))
				return
			}
		}
		writeStatus(w, http.StatusOK, "ready")
	})
	if cfg.Metrics != nil {
		mux.Handle("GET /metrics", cfg.Metrics)
	}
	if cfg.GraphiQL {
		explorer := graphiql.New()
		mux.Handle("GET /{$}", explorer)
		mux.Handle("GET "+graphiql.Path, explorer)
	}
	return mux
}

func withDefaults(cfg Config) Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	if cfg.ParserTokenLimit <= 0 {
		cfg.ParserTokenLimit = DefaultParserTokenLimit
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = DefaultKeepAlive
	}
	if cfg.MaxComplexity == 0 {
		cfg.MaxComplexity = DefaultMaxComplexity
	}
	if cfg.MaxDepth == 0 {
		cfg.MaxDepth = DefaultMaxDepth
	}
	if cfg.MaxAliases == 0 {
		cfg.MaxAliases = DefaultMaxAliases
	}
	if cfg.OperationTimeout == 0 {
		cfg.OperationTimeout = DefaultOperationTimeout
	}
	if cfg.APQCacheSize == 0 {
		cfg.APQCacheSize = DefaultAPQCacheSize
	}
	return cfg
}

// httpStatus maps an error code to the status of a request refused before
// GraphQL execution.
var httpStatus = map[string]int{
	domain.EUNAUTHENTICATED: http.StatusUnauthorized,
	domain.EFORBIDDEN:       http.StatusForbidden,
	domain.ENOTFOUND:        http.StatusNotFound,
	domain.EINVALID:         http.StatusBadRequest,
	domain.ECONFLICT:        http.StatusConflict,
	domain.ERATELIMITED:     http.StatusTooManyRequests,
	domain.EUNAVAILABLE:     http.StatusServiceUnavailable,
	domain.EINTERNAL:        http.StatusInternalServerError,
}

// writeError answers with a GraphQL-shaped error body, so clients read the
// same extensions.code whether a request fails before or during execution.
// A status of 0 is taken from the error's code.
func writeError(w http.ResponseWriter, status int, err error) {
	code := domain.ErrorCode(err)
	if status == 0 {
		status = httpStatus[code]
	}
	if code == domain.EUNAUTHENTICATED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rdev"`)
	}
	var rerr *domain.RateLimitError
	if errors.As(err, &rerr) {
		w.Header().Set("Retry-After", strconv.Itoa(int(rerr.RetryAfter/time.Second)))
	} else if code == domain.EUNAVAILABLE {
		setRetryAfter(w.Header())
	}
	w.Header()["Content-Type"] = contentTypes[mediaJSON] // the edge's writer gives the negotiated one
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]any{{
		"message":    domain.ErrorMessage(err),
		"extensions": errorExtensions(err),
	}}})
}

// errorExtensions returns the extensions of err as clients see it: its code,
// and for a refused charge or an outage, retryAfterSeconds.
func errorExtensions(err error) map[string]any {
	ext := map[string]any{"code": domain.ErrorCode(err)}
	var rerr *domain.RateLimitError
	if errors.As(err, &rerr) {
		ext["retryAfterSeconds"] = int(rerr.RetryAfter / time.Second)
	} else if ext["code"] == domain.EUNAVAILABLE {
		ext["retryAfterSeconds"] = int(retryUnavailable / time.Second)
	}
	return ext
}

func writeStatus(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = fmt.Fprintln(w, msg)
}
