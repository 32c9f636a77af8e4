package domain

import (
	"encoding/base64"
	"strings"
)

// Page-size bounds for every list.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// cursorPrefix versions the opaque cursor format.
const cursorPrefix = "c1:"

// PageRequest asks for at most First items that sort after the item whose key
// is After ("" starts at the beginning).
type PageRequest struct {
	First int
	After string
}

// Page is one page of a list, sorted by key.
type Page[T any] struct {
	Items       []T
	HasNextPage bool
	// HasPreviousPage reports whether the page started after a cursor.
	HasPreviousPage bool
}

// NewPageRequest validates Relay-style arguments. A nil first means
// DefaultPageSize; after is an opaque cursor made by EncodeCursor. It returns
// EINVALID for a first outside 0..MaxPageSize or a malformed cursor.
func NewPageRequest(first *int, after *string) (PageRequest, error) {
	req := PageRequest{First: DefaultPageSize}
	if first != nil {
		if err := validatePageSize(*first); err != nil {
			return PageRequest{}, err
		}
		req.First = *first
	}
	if after != nil && *after != "" {
		key, err := DecodeCursor(*after)
		if err != nil {
			return PageRequest{}, err
		}
		req.After = key
	}
	return req, nil
}

// EncodeCursor turns an item's sort key into an opaque cursor.
func EncodeCursor(key string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + key))
}

// DecodeCursor returns the sort key inside a cursor made by EncodeCursor, or
// EINVALID.
func DecodeCursor(cursor string) (string, error) {
	if len(cursor) > 700 {
		return "", Errorf(EINVALID, "after: malformed cursor")
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) > 512 || !strings.HasPrefix(string(b), cursorPrefix) {
		return "", Errorf(EINVALID, "after: malformed cursor")
	}
	return strings.TrimPrefix(string(b), cursorPrefix), nil
}

// pageOf trims items fetched with a limit of req.First+1 to a page.
func pageOf[T any](items []T, req PageRequest) Page[T] {
	p := Page[T]{Items: items, HasPreviousPage: req.After != ""}
	if len(items) > req.First {
		p.Items, p.HasNextPage = items[:req.First], true
	}
	return p
}
