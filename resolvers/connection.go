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

func projectConnection(p domain.Page[*domain.Project]) *model.ProjectConnection {
	c := &model.ProjectConnection{Nodes: p.Items, PageInfo: pageInfo(p, projectKey)}
	c.Edges = make([]*model.ProjectEdge, len(p.Items))
	for i, n := range p.Items {
		c.Edges[i] = &model.ProjectEdge{Cursor: domain.EncodeCursor(n.ID), Node: n}
	}
	return c
}

func apiKeyConnection(p domain.Page[*domain.APIKey]) *model.APIKeyConnection {
	c := &model.APIKeyConnection{Nodes: p.Items, PageInfo: pageInfo(p, apiKeyKey)}
	c.Edges = make([]*model.APIKeyEdge, len(p.Items))
	for i, n := range p.Items {
		c.Edges[i] = &model.APIKeyEdge{Cursor: domain.EncodeCursor(n.ID), Node: n}
	}
	return c
}

func projectKey(p *domain.Project) string { return p.ID }
func apiKeyKey(k *domain.APIKey) string   { return k.ID }
