package resolvers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// The error code of an operation refused because it is not a trusted
// document.
const codeNotTrusted = "PERSISTED_QUERY_NOT_TRUSTED"

// TrustedDocuments is the set of operations of a persisted-query manifest,
// by the SHA-256 of their text.
type TrustedDocuments struct {
	byHash map[string]string
}

// manifest is Apollo's persisted-query manifest format, as written by
// @apollo/generate-persisted-query-manifest.
type manifest struct {
	Format     string `json:"format"`
	Version    int    `json:"version"`
	Operations []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Type string `json:"type"`
		Body string `json:"body"`
	} `json:"operations"`
}

// ParseTrustedDocuments reads an Apollo persisted-query manifest:
//
//	{"format":"apollo-persisted-query-manifest","version":1,
//	 "operations":[{"id":"<sha256 of body>","name":"…","type":"query","body":"…"}]}
//
// It fails, naming the operation, on any other format or version, an
// operation without a body, or an id that is not the SHA-256 of its body.
func ParseTrustedDocuments(r io.Reader) (*TrustedDocuments, error) {
	var m manifest
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("not a persisted-query manifest: %w", err)
	}
	if m.Format != "apollo-persisted-query-manifest" || m.Version != 1 {
		return nil, fmt.Errorf("format %q version %d: want apollo-persisted-query-manifest version 1", m.Format, m.Version)
	}
	td := &TrustedDocuments{byHash: make(map[string]string, len(m.Operations))}
	for i, op := range m.Operations {
		switch op.Type {
		case "query", "mutation", "subscription":
		default:
			return nil, fmt.Errorf("operation %d (%s): type %q is not query, mutation or subscription", i, op.Name, op.Type)
		}
		if op.Body == "" {
			return nil, fmt.Errorf("operation %d (%s): empty body", i, op.Name)
		}
		if h := queryHash(op.Body); op.ID != h {
			return nil, fmt.Errorf("operation %d (%s): id %q is not the SHA-256 of its body (%s)", i, op.Name, op.ID, h)
		}
		td.byHash[op.ID] = op.Body
	}
	return td, nil
}

// Len returns how many operations the manifest holds.
func (td *TrustedDocuments) Len() int { return len(td.byHash) }

func queryHash(q string) string {
	h := sha256.Sum256([]byte(q))
	return hex.EncodeToString(h[:])
}

// trustedDocuments lets clients send a manifest's operations by hash alone
// and, when only is set, refuses every other operation. It runs before
// automatic persisted queries, on every transport.
type trustedDocuments struct {
	docs *TrustedDocuments
	only bool
}

var _ interface {
	graphql.OperationParameterMutator
	graphql.HandlerExtension
} = trustedDocuments{}

// ExtensionName names the extension for gqlgen.
func (trustedDocuments) ExtensionName() string { return "TrustedDocuments" }

// Validate accepts every schema.
func (trustedDocuments) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters fills in the text of a manifest operation sent by
// hash, and refuses an untrusted operation in trusted-only mode.
func (t trustedDocuments) MutateOperationParameters(_ context.Context, p *graphql.RawParams) *gqlerror.Error {
	if p.Query == "" {
		hash := persistedQueryHash(p.Extensions)
		if q, ok := t.docs.byHash[hash]; ok {
			p.Query = q
			return nil
		}
		if t.only && hash != "" {
			return notTrusted()
		}
		return nil // automatic persisted queries, or no query at all
	}
	if _, ok := t.docs.byHash[queryHash(p.Query)]; !ok && t.only {
		return notTrusted()
	}
	return nil
}

func notTrusted() *gqlerror.Error {
	return &gqlerror.Error{
		Message:    "operation is not a trusted document: this server runs only the operations of its manifest (RDEV_TRUSTED_DOCUMENTS_ONLY)",
		Extensions: map[string]any{"code": codeNotTrusted},
	}
}

// persistedQueryHash returns extensions.persistedQuery.sha256Hash, or "".
func persistedQueryHash(ext map[string]any) string {
	pq, _ := ext["persistedQuery"].(map[string]any)
	h, _ := pq["sha256Hash"].(string)
	return h
}
