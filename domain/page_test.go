package domain

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
)

func TestNewPageRequest(t *testing.T) {
	cursor := EncodeCursor("0123456789abcdef")
	for _, tt := range []struct {
		name  string
		first *int
		after *string
		want  PageRequest
	}{
		{"Defaults", nil, nil, PageRequest{First: DefaultPageSize}},
		{"Zero", ptr(0), nil, PageRequest{First: 0}},
		{"One", ptr(1), nil, PageRequest{First: 1}},
		{"Max", ptr(MaxPageSize), nil, PageRequest{First: MaxPageSize}},
		{"EmptyCursor", nil, ptr(""), PageRequest{First: DefaultPageSize}},
		{"Cursor", ptr(5), &cursor, PageRequest{First: 5, After: "0123456789abcdef"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewPageRequest(tt.first, tt.after)
			if err != nil {
				t.Fatalf("NewPageRequest: %v", err)
			}
			if got != tt.want {
				t.Errorf("NewPageRequest = %+v, want %+v", got, tt.want)
			}
		})
	}

	for _, tt := range []struct {
		name    string
		first   *int
		after   *string
		message string
	}{
		{"ErrNegative", ptr(-1), nil, "first: must be between 0 and 100, got -1"},
		{"ErrTooMany", ptr(MaxPageSize + 1), nil, "first: must be between 0 and 100, got 101"},
		{"ErrGarbageCursor", nil, ptr("not a cursor!"), "after: malformed cursor"},
		{"ErrCursorWithoutPrefix", nil, ptr(base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef"))), "after: malformed cursor"},
		{"ErrBadFirstBeatsBadCursor", ptr(-1), ptr("!"), "first:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NewPageRequest(tt.first, tt.after)
			wantCode(t, err, EINVALID)
			if msg := ErrorMessage(err); !strings.HasPrefix(msg, tt.message) {
				t.Errorf("message = %q, want %q", msg, tt.message)
			}
			if got != (PageRequest{}) {
				t.Errorf("NewPageRequest returned %+v with an error", got)
			}
		})
	}
}

func TestDecodeCursor(t *testing.T) {
	for _, key := range []string{"", "0123456789abcdef", "my-project", "c1:nested", "ünïcödé", "\x00\xff", strings.Repeat("k", 509)} {
		cursor := EncodeCursor(key)
		if strings.ContainsAny(cursor, "+/=") {
			t.Errorf("EncodeCursor(%q) = %q is not URL-safe", key, cursor)
		}
		got, err := DecodeCursor(cursor)
		if err != nil || got != key {
			t.Errorf("DecodeCursor(EncodeCursor(%q)) = %q, %v", key, got, err)
		}
	}

	for _, tt := range []struct {
		name   string
		cursor string
	}{
		{"Empty", ""},
		{"NotBase64", "***"},
		{"Padded", base64.URLEncoding.EncodeToString([]byte("c1:ab"))},
		{"StdAlphabet", base64.RawStdEncoding.EncodeToString([]byte("c1:\xfb\xff"))},
		{"WrongVersion", base64.RawURLEncoding.EncodeToString([]byte("c2:abc"))},
		{"NoPrefix", base64.RawURLEncoding.EncodeToString([]byte("abc"))},
		{"TooLong", EncodeCursor(strings.Repeat("k", 510))},
	} {
		t.Run("Err"+tt.name, func(t *testing.T) {
			got, err := DecodeCursor(tt.cursor)
			wantCode(t, err, EINVALID)
			if got != "" {
				t.Errorf("DecodeCursor(%q) = %q with an error", tt.cursor, got)
			}
		})
	}
}

func TestPageOf(t *testing.T) {
	items := []int{1, 2, 3}
	for _, tt := range []struct {
		name  string
		items []int
		req   PageRequest
		want  Page[int]
	}{
		{"Fewer", items[:2], PageRequest{First: 3}, Page[int]{Items: items[:2]}},
		{"Exactly", items[:2], PageRequest{First: 2}, Page[int]{Items: items[:2]}},
		{"OneMore", items, PageRequest{First: 2}, Page[int]{Items: items[:2], HasNextPage: true}},
		{"AfterCursor", items[:1], PageRequest{First: 2, After: "x"}, Page[int]{Items: items[:1], HasPreviousPage: true}},
		{"Both", items, PageRequest{First: 2, After: "x"}, Page[int]{Items: items[:2], HasNextPage: true, HasPreviousPage: true}},
		{"FirstZero", items[:1], PageRequest{First: 0}, Page[int]{Items: items[:0], HasNextPage: true}},
		{"Empty", nil, PageRequest{First: 2}, Page[int]{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := pageOf(tt.items, tt.req); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("pageOf(%v, %+v) = %+v, want %+v", tt.items, tt.req, got, tt.want)
			}
		})
	}
}

func FuzzDecodeCursor(f *testing.F) {
	for _, s := range []string{"", "0123456789abcdef", "my-project", "YzE6", "YzE6YWJj", "c1:", "!!!", "YzE6\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		// Any input is either a cursor or EINVALID, and never panics.
		if key, err := DecodeCursor(s); err != nil {
			if ErrorCode(err) != EINVALID || key != "" {
				t.Fatalf("DecodeCursor(%q) = %q, %v; want \"\" and %s", s, key, err, EINVALID)
			}
		} else if got, err := DecodeCursor(EncodeCursor(key)); err != nil || got != key {
			t.Fatalf("cursor %q decodes to %q, which does not round-trip: %q, %v", s, key, got, err)
		}

		// Every short key round-trips.
		if len(s) > 500 {
			return
		}
		cursor := EncodeCursor(s)
		got, err := DecodeCursor(cursor)
		if err != nil || got != s {
			t.Fatalf("DecodeCursor(EncodeCursor(%q)) = %q, %v", s, got, err)
		}
		req, err := NewPageRequest(nil, &cursor)
		if err != nil || (s != "" && req.After != s) {
			t.Fatalf("NewPageRequest(after: EncodeCursor(%q)) = %+v, %v", s, req, err)
		}
	})
}
