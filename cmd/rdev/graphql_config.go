package main

import (
	"fmt"
	"os"
	"time"

	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/infra/websocket"
	"github.com/rdev-hq/rdev/resolvers"
)

// graphQLConfig is the GraphQL edge's limits and persisted queries.
type graphQLConfig struct {
	MaxComplexity                 int
	MaxDepth                      int
	MaxAliases                    int
	MaxSubscriptionsPerConnection int
	MaxSubscriptionsPerKey        int
	MaxSocketsPerKey              int
	MaxStreamsPerKey              int
	WSReadLimit                   int
	OperationTimeout              time.Duration
	FieldSuggestions              string
	APQCacheSize                  int
	TrustedDocuments              string
	TrustedDocumentsOnly          bool
}

func (c *graphQLConfig) register(f *envFlags) {
	f.Int(&c.MaxComplexity, "max-complexity", "RDEV_MAX_COMPLEXITY", resolvers.DefaultMaxComplexity, "largest cost of one operation: 1 a field, connections times their first (0: no limit)")
	f.Int(&c.MaxDepth, "max-depth", "RDEV_MAX_DEPTH", resolvers.DefaultMaxDepth, "deepest nesting of fields in one operation (0: no limit)")
	f.Int(&c.MaxAliases, "max-aliases", "RDEV_MAX_ALIASES", resolvers.DefaultMaxAliases, "most aliased fields in one operation (0: no limit)")
	f.Int(&c.MaxSubscriptionsPerConnection, "max-subscriptions-per-connection", "RDEV_MAX_SUBSCRIPTIONS_PER_CONNECTION", 100, "operations one WebSocket connection runs at once (0: no limit)")
	f.Int(&c.MaxSocketsPerKey, "max-sockets-per-key", "RDEV_MAX_SOCKETS_PER_KEY", 50, "WebSocket connections one API key (without a key: one client address) holds open at once on this server; one more closes with 4429 (0: no limit)")
	f.Int(&c.MaxStreamsPerKey, "max-streams-per-key", "RDEV_MAX_STREAMS_PER_KEY", 100, "SSE streams one API key (without a key: one client address) holds open at once on this server; one more is refused with 429 (0: no limit)")
	f.Int(&c.MaxSubscriptionsPerKey, "max-subscriptions-per-key", "RDEV_MAX_SUBSCRIPTIONS_PER_KEY", 1000, "subscriptions one API key (without a key: one client address) runs at once on this server, over WebSockets and SSE; one more is refused with RATE_LIMITED (0: no limit). Subscriptions are not charged to the request budget")
	f.Int(&c.WSReadLimit, "ws-read-limit", "RDEV_WS_READ_LIMIT", websocket.DefaultReadLimit, "largest WebSocket message accepted, in bytes; a larger one closes the connection with 1009")
	f.Duration(&c.OperationTimeout, "operation-timeout", "RDEV_OPERATION_TIMEOUT", resolvers.DefaultOperationTimeout, "longest a query or mutation may run, not a subscription (0: no limit)")
	f.String(&c.FieldSuggestions, "field-suggestions", "RDEV_FIELD_SUGGESTIONS", "auto", `let validation errors suggest field names ("Did you mean …"): true, false, or auto (on with the embedded database)`)
	f.Int(&c.APQCacheSize, "apq-cache-size", "RDEV_APQ_CACHE_SIZE", resolvers.DefaultAPQCacheSize, "automatic persisted queries remembered, least recently used dropped (0: automatic persisted queries off)")
	f.String(&c.TrustedDocuments, "trusted-documents", "RDEV_TRUSTED_DOCUMENTS", "", "Apollo persisted-query manifest (JSON) of operations clients may send by hash alone")
	f.Bool(&c.TrustedDocumentsOnly, "trusted-documents-only", "RDEV_TRUSTED_DOCUMENTS_ONLY", false, "refuse every operation that is not in the trusted-documents manifest")
}

// edge checks the settings and returns the resolvers.Config they make, with
// the trusted-documents manifest loaded. A manifest that cannot be read or
// is not a valid manifest fails start-up.
func (c *graphQLConfig) edge(embedded bool) (resolvers.Config, error) {
	suggestions, err := autoBool("RDEV_FIELD_SUGGESTIONS", c.FieldSuggestions, embedded)
	if err != nil {
		return resolvers.Config{}, err
	}
	for _, v := range []struct {
		env string
		n   int
	}{
		{"RDEV_MAX_COMPLEXITY", c.MaxComplexity}, {"RDEV_MAX_DEPTH", c.MaxDepth}, {"RDEV_MAX_ALIASES", c.MaxAliases},
		{"RDEV_MAX_SUBSCRIPTIONS_PER_CONNECTION", c.MaxSubscriptionsPerConnection}, {"RDEV_APQ_CACHE_SIZE", c.APQCacheSize},
		{"RDEV_MAX_SOCKETS_PER_KEY", c.MaxSocketsPerKey}, {"RDEV_MAX_STREAMS_PER_KEY", c.MaxStreamsPerKey},
		{"RDEV_MAX_SUBSCRIPTIONS_PER_KEY", c.MaxSubscriptionsPerKey},
	} {
		if v.n < 0 {
			return resolvers.Config{}, fmt.Errorf("%s: %d is negative (0 means no limit)", v.env, v.n)
		}
	}
	if c.WSReadLimit <= 0 {
		return resolvers.Config{}, fmt.Errorf("RDEV_WS_READ_LIMIT: %d must be positive", c.WSReadLimit)
	}
	if c.OperationTimeout < 0 {
		return resolvers.Config{}, fmt.Errorf("RDEV_OPERATION_TIMEOUT: %s is negative (0 means no limit)", c.OperationTimeout)
	}
	cfg := resolvers.Config{
		FieldSuggestions:     suggestions,
		MaxComplexity:        noLimit(c.MaxComplexity),
		MaxDepth:             noLimit(c.MaxDepth),
		MaxAliases:           noLimit(c.MaxAliases),
		OperationTimeout:     time.Duration(noLimit(int(c.OperationTimeout))),
		APQCacheSize:         noLimit(c.APQCacheSize),
		TrustedDocumentsOnly: c.TrustedDocumentsOnly,
		ConnLimits:           domain.NewConnLimits(c.MaxSocketsPerKey, c.MaxStreamsPerKey, c.MaxSubscriptionsPerKey),
	}
	if c.TrustedDocuments == "" {
		if c.TrustedDocumentsOnly {
			return resolvers.Config{}, fmt.Errorf("RDEV_TRUSTED_DOCUMENTS_ONLY: needs a manifest in RDEV_TRUSTED_DOCUMENTS")
		}
		return cfg, nil
	}
	f, err := os.Open(c.TrustedDocuments) //nolint:gosec // the operator names the file to read
	if err != nil {
		return resolvers.Config{}, fmt.Errorf("RDEV_TRUSTED_DOCUMENTS: %w", err)
	}
	defer func() { _ = f.Close() }()
	cfg.TrustedDocuments, err = resolvers.ParseTrustedDocuments(f)
	if err != nil {
		return resolvers.Config{}, fmt.Errorf("RDEV_TRUSTED_DOCUMENTS: %s: %w", c.TrustedDocuments, err)
	}
	return cfg, nil
}

// noLimit turns the 0 of "no limit" into the negative value resolvers.Config
// takes for it (its zero value means the default).
func noLimit(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
