package resolvers

import (
	"context"
	"net/http"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/rdev-hq/rdev/domain"
)

// The media types of a GraphQL response over HTTP
// (graphql.github.io/graphql-over-http): application/graphql-response+json
// tells with the status whether the request was refused before it ran;
// application/json, the older one, answers 200 to every well-formed
// request.
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// acceptApollo is the Accept header of Apollo Client's HttpLink.
const acceptApollo = mediaGraphQLResponse + ",application/json;q=0.9"

// contentTypes are the Content-Type headers of the two media types, shared
// by every response so that setting one allocates nothing. They are never
// changed in place.
var contentTypes = map[string][]string{
	mediaJSON:            {mediaJSON + "; charset=utf-8"},
	mediaGraphQLResponse: {mediaGraphQLResponse + "; charset=utf-8"},
}

// negotiate returns the media type of the answer to a request whose Accept
// header is accept: of application/graphql-response+json and
// application/json (which application/* and */* stand for), the one
// accepted with the higher q, the one listed first if tied; application/json
// if accept is empty or accepts neither (the default the specification
// keeps for older clients). Apollo Client's
// "application/graphql-response+json,application/json;q=0.9" gets the
// former, a bare fetch the latter.
func negotiate(accept string) string {
	// What most clients send, without parsing.
	switch accept {
	case "", "*/*", mediaJSON:
		return mediaJSON
	case mediaGraphQLResponse, acceptApollo:
		return mediaGraphQLResponse
	}
	best, bestQ := mediaJSON, 0.0
	for accept != "" {
		var part string
		part, accept, _ = strings.Cut(accept, ",")
		typ, params, _ := strings.Cut(part, ";")
		var m string
		switch typ = strings.TrimSpace(typ); {
		case strings.EqualFold(typ, mediaGraphQLResponse):
			m = mediaGraphQLResponse
		case strings.EqualFold(typ, mediaJSON), typ == "*/*", strings.EqualFold(typ, "application/*"):
			m = mediaJSON
		default:
			continue
		}
		if q := quality(params); q > bestQ {
			best, bestQ = m, q
		}
	}
	return best
}

// acceptsSingle reports whether accept takes a single response:
// application/json or application/graphql-response+json with a q above 0.
func acceptsSingle(accept string) bool {
	for accept != "" {
		var part string
		part, accept, _ = strings.Cut(accept, ",")
		typ, params, _ := strings.Cut(part, ";")
		typ = strings.TrimSpace(typ)
		if (strings.EqualFold(typ, mediaJSON) || strings.EqualFold(typ, mediaGraphQLResponse)) && quality(params) > 0 {
			return true
		}
	}
	return false
}

// quality returns the q parameter among a media range's params: 1 if there
// is none, 0 (not acceptable) if it is not a number from 0 to 1.
func quality(params string) float64 {
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || q < 0 || q > 1 {
			return 0
		}
		return q
	}
	return 1
}

// refusal is how a request was refused before its operation ran: its
// document did not parse, validate or coerce its variables, its persisted
// query was unknown, or it was not a GraphQL request at all (malformed).
// Such an answer has no data, and its status depends on the media type
// (see status).
type refusal struct {
	refused   bool
	malformed bool   // no query, and no persisted query's hash in its stead
	code      string // extensions.code of the first error
}

// transportStatuses are the refusals whose status is about the request's
// standing, not its document: they keep it whatever the media type.
var transportStatuses = map[string]int{
	domain.EUNAUTHENTICATED: http.StatusUnauthorized,
	domain.EFORBIDDEN:       http.StatusForbidden,
	domain.ERATELIMITED:     http.StatusTooManyRequests,
	domain.EUNAVAILABLE:     http.StatusServiceUnavailable,
}

// status is the HTTP status of the refusal's answer in media type media, as
// the GraphQL over HTTP specification has it: 400 for a malformed request;
// under application/graphql-response+json, 400 for every other document
// error (an answer without data is never a 2xx there); under
// application/json, 200, since the request was well-formed. Refusals about
// the caller (401, 403, 429, 503) keep their status under either.
func (f *refusal) status(media string) int {
	switch {
	case f.malformed:
		return http.StatusBadRequest
	case transportStatuses[f.code] != 0:
		return transportStatuses[f.code]
	case media == mediaGraphQLResponse:
		return http.StatusBadRequest
	default:
		return http.StatusOK
	}
}

// refuse records that ctx's HTTP request was refused with errs before its
// operation ran. It does nothing for an operation whose answer is no HTTP
// response of its own (a WebSocket's, an SSE stream's).
func refuse(ctx context.Context, errs gqlerror.List, malformed bool) {
	er := edgeRequestFrom(ctx)
	if er == nil || er.w.refusal == nil || len(errs) == 0 {
		return
	}
	er.refusal.refused, er.refusal.malformed = true, malformed
	er.refusal.code, _ = errs[0].Extensions["code"].(string)
}

// refusingExecutor is the executor the POST and GET transports run
// operations with: it records, for the edge, a request that fails before
// its operation runs, so that its answer gets the status of its media type.
// gqlgen's transports decide that status themselves, from the order of the
// Accept header only, and call every such request well-formed.
type refusingExecutor struct{ graphql.GraphExecutor }

// CreateOperationContext prepares the operation and records why it failed,
// if it did. The parameters' query is filled in by then from a persisted
// query's hash, if one was sent and known.
func (x *refusingExecutor) CreateOperationContext(ctx context.Context, p *graphql.RawParams) (*graphql.OperationContext, gqlerror.List) {
	oc, errs := x.GraphExecutor.CreateOperationContext(ctx, p)
	if errs != nil {
		refuse(ctx, errs, p.Query == "" && persistedQueryHash(p.Extensions) == "")
	}
	return oc, errs
}

// refusalsTold wraps a POST or GET transport so that it runs operations
// through the request's refusingExecutor.
type refusalsTold struct{ graphql.Transport }

// Do serves the request through t's transport, telling the edge of a
// refusal.
func (t refusalsTold) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	er := edgeRequestFrom(r.Context())
	if er == nil {
		t.Transport.Do(w, r, exec)
		return
	}
	// The executor lives in the request's state: passing it allocates
	// nothing.
	er.exec = refusingExecutor{exec}
	t.Transport.Do(w, r, &er.exec)
}
