package websocket_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rdev-hq/rdev/infra/websocket"
)

func TestOriginChecker(t *testing.T) {
	list := []string{"https://app.example.com", " HTTP://LOCALHOST:3000/ "}
	for _, tt := range []struct {
		name    string
		allowed []string
		origin  *string // nil: no Origin header
		want    bool
	}{
		{"NoOrigin", list, nil, true},
		{"Listed", list, ptr("https://app.example.com"), true},
		{"ListedCase", list, ptr("https://APP.example.com"), true},
		{"ListedTrailingSlash", list, ptr("https://app.example.com/"), true},
		{"ListedNormalizedEntry", list, ptr("http://localhost:3000"), true},
		{"OtherPort", list, ptr("http://localhost:3001"), false},
		{"ExplicitDefaultPort", list, ptr("https://app.example.com:443"), false},
		{"OtherScheme", list, ptr("http://app.example.com"), false},
		{"Subdomain", list, ptr("https://x.app.example.com"), false},
		{"Suffix", list, ptr("https://app.example.com.evil.test"), false},
		{"SameOrigin", list, ptr("https://rdev.example.com"), true},
		{"SameOriginCase", list, ptr("https://RDEV.example.com"), true},
		{"SameHostOtherPort", list, ptr("https://rdev.example.com:8443"), false},
		{"LookalikeOfHost", list, ptr("https://rdev.example.com.evil.test"), false},
		{"Empty", list, ptr(""), false},
		{"Null", list, ptr("null"), false},
		{"NullListed", []string{"null"}, ptr("null"), true},
		{"Malformed", list, ptr("://rdev.example.com"), false},
		{"Star", []string{"*"}, ptr("https://evil.test"), true},
		{"StarAmongOthers", []string{"https://a.test", "*"}, ptr("https://evil.test"), true},
		{"NilListCross", nil, ptr("https://app.example.com"), false},
		{"NilListSame", nil, ptr("http://rdev.example.com"), true},
		{"NilListNoOrigin", nil, nil, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "http://rdev.example.com/graphql", nil)
			if tt.origin != nil {
				r.Header["Origin"] = []string{*tt.origin}
			}
			if got := websocket.OriginChecker(tt.allowed)(r); got != tt.want {
				t.Errorf("OriginChecker(%q)(Origin %v) = %v, want %v", tt.allowed, deref(tt.origin), got, tt.want)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return "\"" + *s + "\""
}
