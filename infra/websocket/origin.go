package websocket

import (
	"net/http"
	"net/url"
	"strings"
)

// OriginChecker returns a CheckOrigin function for Implementation. It allows
// requests without an Origin header (non-browser clients, which cannot be
// made to send cross-site requests), same-origin requests (the Origin's host
// equals the request's Host), and requests whose Origin exactly matches an
// entry of allowed, written "scheme://host[:port]" and compared without
// regard to case (a trailing "/" is ignored). The entry "*" allows every
// origin. Everything else, including an empty or malformed Origin, is
// refused, and the upgrade fails with HTTP 403.
func OriginChecker(allowed []string) func(*http.Request) bool {
	set := make(map[string]bool, len(allowed))
	allowAll := false
	for _, a := range allowed {
		a = normalizeOrigin(a)
		if a == "*" {
			allowAll = true
		}
		set[a] = true
	}
	return func(r *http.Request) bool {
		origins, ok := r.Header["Origin"]
		if !ok || len(origins) == 0 {
			return true
		}
		if allowAll {
			return true
		}
		origin := normalizeOrigin(origins[0])
		if origin == "" {
			return false
		}
		if u, err := url.Parse(origin); err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host) {
			return true
		}
		return set[origin]
	}
}

func normalizeOrigin(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "/")
}
