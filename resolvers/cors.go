package resolvers

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/rdev-hq/rdev/domain"
)

// CORSMaxAge is how long a browser may keep a preflight's answer: two
// hours, the most Chromium keeps one (Firefox would keep one a day).
const CORSMaxAge = 7200

// The CORS answers, set on every response to an allowed page (their values
// are shared and never changed in place).
var (
	corsAllowMethods = []string{"GET, POST, OPTIONS"}
	// corsAllowHeaders are the headers a page may send: the key, the
	// GraphQL request's own, the request ID, W3C trace context, and what
	// Apollo Client sends for client awareness and upload CSRF prevention.
	corsAllowHeaders = []string{strings.Join([]string{
		"Authorization", "Content-Type", "Accept", "X-Request-Id",
		"Traceparent", "Tracestate",
		"Apollographql-Client-Name", "Apollographql-Client-Version", "Apollo-Require-Preflight",
	}, ", ")}
	// corsExposeHeaders are the response headers a page may read beyond
	// the CORS-safelisted ones.
	corsExposeHeaders = []string{"X-Request-Id, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After"}
	corsMaxAge        = []string{strconv.Itoa(CORSMaxAge)}
	corsVary          = "Origin"
)

// cors lets web pages on the allowed origins call /graphql from the
// browser: it answers their preflights and gives their requests'
// responses, errors included, Access-Control-Allow-Origin (the page's
// origin, echoed, with Vary: Origin) and Access-Control-Expose-Headers.
// There is no Access-Control-Allow-Credentials: the API key travels in the
// Authorization header, never in a cookie, so a page sends its requests
// without credentials (fetch's default "same-origin"). A page on any other
// origin gets no CORS header, and its preflight 403; requests without an
// Origin header (non-browser clients) are left alone.
type cors struct {
	// allowed reports whether the request's Origin is allowed; nil allows
	// none.
	allowed func(*http.Request) bool
}

// apply sets the CORS headers for r, whose Origin header is origin, and
// answers it if it is a preflight. It reports whether it answered.
func (c cors) apply(w http.ResponseWriter, r *http.Request, origin string) bool {
	h := w.Header()
	// Whether the answer lets a page read it depends on its Origin, so a
	// cache must not give one page's answer to another.
	h.Add("Vary", corsVary)
	preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
	if c.allowed == nil || !c.allowed(r) {
		if preflight {
			writeError(w, http.StatusForbidden, domain.Errorf(domain.EFORBIDDEN,
				"this page's Origin is not allowed to call the API: add it to RDEV_ALLOWED_ORIGINS"))
		}
		return preflight
	}
	h["Access-Control-Allow-Origin"] = []string{origin}
	if preflight {
		h["Access-Control-Allow-Methods"] = corsAllowMethods
		h["Access-Control-Allow-Headers"] = corsAllowHeaders
		h["Access-Control-Max-Age"] = corsMaxAge
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	h["Access-Control-Expose-Headers"] = corsExposeHeaders
	return false
}
