package resolvers

import (
	"github.com/rdev-hq/rdev/domain"
	"github.com/rdev-hq/rdev/graph/model"
)

// pageInfo maps a domain page to a Relay PageInfo, using key for cursors.
func pageInfo[T any](p domain.Page[T], key func(T) string) *model.PageInfo {
	info := &model.PageInfo{HasNextPage: p.HasNextPage, HasPreviousPage: p.HasPreviousPage}
	if n := len(p.Items); n > 0 {
		info.StartCursor = new(domain.EncodeCursor(key(p.Items[0])))
		info.EndCursor = new(domain.EncodeCursor(key(p.Items[n-1])))
	}
	return info
}

// edges pairs each item of a page with its cursor.
func edges[T, E any](items []T, key func(T) string, edge func(cursor string, node T) E) []E {
	out := make([]E, len(items))
	for i, n := range items {
		out[i] = edge(domain.EncodeCursor(key(n)), n)
	}
	return out
}

func projectConnection(p domain.Page[*domain.Project]) *model.ProjectConnection {
	return &model.ProjectConnection{Nodes: p.Items, PageInfo: pageInfo(p, projectKey),
		Edges: edges(p.Items, projectKey, func(c string, n *domain.Project) *model.ProjectEdge {
			return &model.ProjectEdge{Cursor: c, Node: n}
		})}
}

func apiKeyConnection(p domain.Page[*domain.APIKey]) *model.APIKeyConnection {
	return &model.APIKeyConnection{Nodes: p.Items, PageInfo: pageInfo(p, apiKeyKey),
		Edges: edges(p.Items, apiKeyKey, func(c string, n *domain.APIKey) *model.APIKeyEdge {
			return &model.APIKeyEdge{Cursor: c, Node: n}
		})}
}

func commandConnection(p domain.Page[*domain.Command]) *model.CommandConnection {
	return &model.CommandConnection{Nodes: p.Items, PageInfo: pageInfo(p, commandKey),
		Edges: edges(p.Items, commandKey, func(c string, n *domain.Command) *model.CommandEdge {
			return &model.CommandEdge{Cursor: c, Node: n}
		})}
}

func auditConnection(p domain.Page[*domain.AuditEntry]) *model.AuditEntryConnection {
	return &model.AuditEntryConnection{Nodes: p.Items, PageInfo: pageInfo(p, domain.AuditCursorKey),
		Edges: edges(p.Items, domain.AuditCursorKey, func(c string, n *domain.AuditEntry) *model.AuditEntryEdge {
			return &model.AuditEntryEdge{Cursor: c, Node: n}
		})}
}

func projectKey(p *domain.Project) string { return p.ID }
func apiKeyKey(k *domain.APIKey) string   { return k.ID }
func commandKey(c *domain.Command) string { return c.ID }

func webhookConnection(p domain.Page[*domain.Webhook]) *model.WebhookConnection {
	return &model.WebhookConnection{Nodes: p.Items, PageInfo: pageInfo(p, webhookKey),
		Edges: edges(p.Items, webhookKey, func(c string, n *domain.Webhook) *model.WebhookEdge {
			return &model.WebhookEdge{Cursor: c, Node: n}
		})}
}

func webhookDeliveryConnection(p domain.Page[*domain.WebhookDelivery]) *model.WebhookDeliveryConnection {
	return &model.WebhookDeliveryConnection{Nodes: p.Items, PageInfo: pageInfo(p, deliveryKey),
		Edges: edges(p.Items, deliveryKey, func(c string, n *domain.WebhookDelivery) *model.WebhookDeliveryEdge {
			return &model.WebhookDeliveryEdge{Cursor: c, Node: n}
		})}
}

func webhookKey(w *domain.Webhook) string          { return w.ID }
func deliveryKey(d *domain.WebhookDelivery) string { return d.ID }
