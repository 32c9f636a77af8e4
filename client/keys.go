package client

import (
	"context"
	"time"
)

// Key is an API key as the server shows it: never its secret.
type Key struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
	// Status is ACTIVE, EXPIRED or REVOKED.
	Status       string   `json:"status"`
	AllowedCIDRs []string `json:"allowedCIDRs"`
	// RateLimit is the key's own requests per second; nil: the server's.
	RateLimit *int       `json:"rateLimit"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt"`
	RevokedAt *time.Time `json:"revokedAt"`
	// LastUsedAt is accurate to within a minute; nil if never used.
	LastUsedAt *time.Time `json:"lastUsedAt"`
	// Projects is the key's project scope.
	Projects struct {
		Names        []string `json:"names"`
		Selectors    []string `json:"selectors"`
		Unrestricted bool     `json:"unrestricted"`
	} `json:"projects"`
}

const keyFields = `id name scopes status allowedCIDRs rateLimit createdAt expiresAt revokedAt lastUsedAt projects { names selectors unrestricted }`

// CreateKeyInput is a key to create. A key can grant only what it holds
// itself: scopes, projects, CIDRs, rate limit and lifetime within its own.
type CreateKeyInput struct {
	Name string
	// Scopes to grant, e.g. PROJECTS_READ, COMMANDS_WRITE, ADMIN.
	Scopes []string
	// Expires is the key's lifetime from now; 0 for never (or, when the
	// creating key expires, its expiry).
	Expires time.Duration
	// AllowedCIDRs are the client addresses it may be used from; nil: any.
	AllowedCIDRs []string
	// RateLimit is its own requests per second; 0: the server's default.
	RateLimit int
	// Projects and ProjectSelectors limit it to projects by name and by
	// label selector (e.g. team=payments); both nil: every project.
	Projects, ProjectSelectors []string
}

const (
	createKeyMutation = `mutation($in: CreateAPIKeyInput!) { createAPIKey(input: $in) { token apiKey { ` + keyFields + ` } } }`
	revokeKeyMutation = `mutation($id: ID!) { revokeAPIKey(input: {id: $id}) { apiKey { ` + keyFields + ` } revokedDescendants { ` + keyFields + ` } } }`
	keysQuery         = `query($after: String) { apiKeys(first: 100, after: $after) { nodes { ` + keyFields + ` } pageInfo { hasNextPage endCursor } } }`
)

// CreateKey creates an API key and returns it with its bearer token, which
// the server shows only this once. It is not retried after a failure on
// the way (a retry could create a second key). Errors: an *Error with
// FORBIDDEN (the client's key lacks KEYS_WRITE or what it would grant) or
// INVALID_INPUT.
func (c *Client) CreateKey(ctx context.Context, in CreateKeyInput) (*Key, string, error) {
	v := map[string]any{"name": in.Name, "scopes": orEmpty(in.Scopes)}
	if in.Expires > 0 {
		v["expiresAt"] = time.Now().Add(in.Expires).UTC().Format(time.RFC3339)
	}
	if in.AllowedCIDRs != nil {
		v["allowedCIDRs"] = in.AllowedCIDRs
	}
	if in.RateLimit > 0 {
		v["rateLimit"] = in.RateLimit
	}
	if in.Projects != nil {
		v["projects"] = in.Projects
	}
	if in.ProjectSelectors != nil {
		v["projectSelectors"] = in.ProjectSelectors
	}
	var r struct {
		CreateAPIKey struct {
			Token  string `json:"token"`
			APIKey Key    `json:"apiKey"`
		} `json:"createAPIKey"`
	}
	if err := c.once(ctx, createKeyMutation, map[string]any{"in": v}, &r); err != nil {
		return nil, "", err
	}
	return &r.CreateAPIKey.APIKey, r.CreateAPIKey.Token, nil
}

// Keys returns every API key the client's key may see, oldest first,
// revoked and expired ones included. Errors: an *Error with FORBIDDEN
// (no KEYS_READ).
func (c *Client) Keys(ctx context.Context) ([]Key, error) {
	var keys []Key
	var after *string
	for {
		var r struct {
			APIKeys struct {
				Nodes    []Key `json:"nodes"`
				PageInfo struct {
					HasNextPage bool    `json:"hasNextPage"`
					EndCursor   *string `json:"endCursor"`
				} `json:"pageInfo"`
			} `json:"apiKeys"`
		}
		if err := c.do(ctx, keysQuery, map[string]any{"after": after}, &r); err != nil {
			return nil, err
		}
		keys = append(keys, r.APIKeys.Nodes...)
		if !r.APIKeys.PageInfo.HasNextPage {
			return keys, nil
		}
		after = r.APIKeys.PageInfo.EndCursor
	}
}

// RevokeKey revokes an API key and, transitively, the keys it created,
// and returns it with those (parents before their children). Errors: an
// *Error with NOT_FOUND or FORBIDDEN.
func (c *Client) RevokeKey(ctx context.Context, id string) (*Key, []Key, error) {
	var r struct {
		RevokeAPIKey struct {
			APIKey      Key   `json:"apiKey"`
			Descendants []Key `json:"revokedDescendants"`
		} `json:"revokeAPIKey"`
	}
	if err := c.do(ctx, revokeKeyMutation, map[string]any{"id": id}, &r); err != nil {
		return nil, nil, err
	}
	return &r.RevokeAPIKey.APIKey, r.RevokeAPIKey.Descendants, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
