package resolvers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/rdev-hq/rdev/domain"
)

// edge is the HTTP front of /graphql. Before GraphQL runs, it does for
// every request, in this order:
//
//  1. names the caller: its address (through trusted proxies only), its
//     request ID (X-Request-Id, echoed), and its API key if it sent one;
//     bad credentials are refused here (see authenticator);
//  2. charges the request to its key's request budget, refusing one over
//     it with 429 (RATE_LIMITED), and gives the response the RateLimit-*
//     headers; the operations of a WebSocket or an SSE stream are charged
//     one by one instead (see chargeOperation), and subscriptions not at
//     all: they are capped by how many run at once;
//  3. counts an SSE stream, and the subscription it runs, against its
//     caller's caps for as long as it runs, refusing one over either with
//     429;
//  4. reads the body whole within the body timeout and size limit (see
//     readBody).
//
// It then hands the request to next, through one writer (edgeWriter) that
// sets the rate-limit headers as the response starts, turns a 200 into 503
// with Retry-After when the operation found something it needs
// unavailable, and gives every error answered with an HTTP error status an
// extensions.code.
//
// Before all of that it gives a page on an allowed origin its CORS headers
// and answers its preflight (see cors); a request without an Origin header
// pays one header lookup for it. Every answer but a stream's is in the
// media type the request accepts (see negotiate), and a request refused
// before its operation ran gets the status the GraphQL over HTTP
// specification gives that media type (see refusal).
//
// It is one handler, not a chain, so that a request is copied with a new
// context once and its per-request state is one allocation. WebSocket
// upgrades get the caller and the charge only: the connection's messages
// are no HTTP responses.
type edge struct {
	auth *authenticator
	cors cors
	// limits charges request budgets; nil charges nothing.
	limits *domain.RateLimitService
	// conns caps open SSE streams per caller; nil caps nothing.
	conns       *domain.ConnLimits
	maxBody     int64
	bodyTimeout time.Duration
	next        http.Handler
}

// edgeRequest is what the edge keeps of one request, in one allocation:
// its writer, its rate budget's answer and its retry hint, which the
// GraphQL layer finds in the context (rateRequestFrom, retryHintFrom).
type edgeRequest struct {
	w     edgeWriter
	rate  rateRequest
	hint  retryHint
	rated bool // rate holds a charge (the edge has a rate limiter)
	// subscription is set when the edge counts the request's subscription
	// against its caller's cap (an SSE stream's).
	subscription bool
	// stream is set when the request is answered with an event stream
	// (see eventStreams).
	stream bool
	// refusal is set when the request is refused before its operation runs.
	refusal refusal
	// exec is the executor the POST and GET transports run the request's
	// operation with (see refusalsTold).
	exec refusingExecutor
}

type edgeRequestKey struct{}

func edgeRequestFrom(ctx context.Context) *edgeRequest {
	er, _ := ctx.Value(edgeRequestKey{}).(*edgeRequest)
	return er
}

// countedAtEdge reports whether the edge counts ctx's subscription against
// its caller's cap already (an SSE stream's).
func countedAtEdge(ctx context.Context) bool {
	er := edgeRequestFrom(ctx)
	return er != nil && er.subscription
}

// sse is the transport whose requests are streams.
var sse = transport.SSE{}

func (e *edge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	upgrade := strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
	er := &edgeRequest{}
	if upgrade {
		// The upgrader checks the Origin of a WebSocket itself.
		e.serve(w, r, er, true, streamNever)
		return
	}
	if origin := r.Header["Origin"]; len(origin) > 0 && e.cors.apply(w, r, origin[0]) {
		return
	}
	wants := streamWanted(r)
	er.w.ResponseWriter = w
	if wants != streamAlways {
		er.w.media = negotiate(r.Header.Get("Accept"))
		er.w.refusal = &er.refusal
	}
	e.serve(&er.w, r, er, false, wants)
	if er.w.held != nil {
		er.w.finish(r)
	}
}

// serve runs the steps of edge on r, answering through w. wants says
// whether r asks for an event stream (SSE).
func (e *edge) serve(w http.ResponseWriter, r *http.Request, er *edgeRequest, upgrade bool, wants streamWant) {
	caller, err := e.auth.callerOf(r)
	w.Header().Set(headerRequestID, caller.RequestID)
	if err != nil {
		writeError(w, 0, err)
		return
	}
	ctx := context.WithValue(domain.NewContextWithCaller(r.Context(), caller), edgeRequestKey{}, er)
	release, ok := e.admit(ctx, w, r, er, upgrade, wants)
	if !ok {
		return
	}
	defer release()
	if !upgrade {
		er.w.hint = &er.hint
	}
	e.next.ServeHTTP(w, r.WithContext(ctx))
}

// streamWant is whether a request asks for its answer as an event stream.
type streamWant uint8

const (
	streamNever streamWant = iota
	// streamIfSubscription: it accepts an event stream and a single
	// response alike (urql's fetch exchange asks so for every operation):
	// a subscription streams, anything else gets one response.
	streamIfSubscription
	// streamAlways: it accepts only an event stream (graphql-sse).
	streamAlways
)

// streamWanted tells whether r asks for an event stream: a POST of JSON
// accepting text/event-stream, as the SSE transport takes them.
func streamWanted(r *http.Request) streamWant {
	if !sse.Supports(r) {
		return streamNever
	}
	if acceptsSingle(r.Header.Get("Accept")) {
		return streamIfSubscription
	}
	return streamAlways
}

// eventStreams is the SSE transport, for the requests the edge decided
// stream: an operation other than a subscription is answered once, by the
// POST transport, even from a client that would take an event stream.
type eventStreams struct{ transport.SSE }

// Supports reports whether r is to be answered with an event stream.
func (t eventStreams) Supports(r *http.Request) bool {
	if er := edgeRequestFrom(r.Context()); er != nil {
		return er.stream
	}
	return t.SSE.Supports(r)
}

// admit charges r to its caller's request budget, or counts it against the
// caller's caps for as long as it runs (see release), and reads its body. A
// request that may stream has its body read first: whether it streams, and
// whether it is charged, depend on its operation. A stream is counted as
// one; a subscription is counted as one too and not charged, being bounded
// by how many run at once; counting it here lets a refusal still be a 429.
// It reports whether the request goes on.
func (e *edge) admit(ctx context.Context, w http.ResponseWriter, r *http.Request, er *edgeRequest, upgrade bool, wants streamWant) (release func(), ok bool) {
	if wants == streamNever {
		if !e.charge(ctx, w, er, upgrade) {
			return nil, false
		}
		_, ok = e.readBody(w, r)
		return noRelease, ok
	}
	body, ok := e.readBody(w, r)
	if !ok {
		return nil, false
	}
	subscription := subscribes(r, body)
	er.stream = wants == streamAlways || subscription
	if !er.stream {
		return noRelease, e.charge(ctx, w, er, false)
	}
	er.w.media, er.w.refusal = "", nil // its answer is a stream
	caller := domain.CallerFromContext(ctx)
	endStream, err := e.conns.Open(caller, domain.ConnStream)
	if err != nil {
		writeError(w, 0, err)
		return nil, false
	}
	if !subscription {
		if !e.charge(ctx, w, er, false) {
			endStream()
			return nil, false
		}
		return endStream, true
	}
	endSubscription, err := e.conns.Open(caller, domain.ConnSubscription)
	if err != nil {
		endStream()
		writeError(w, 0, err)
		return nil, false
	}
	er.subscription = true
	return func() { endSubscription(); endStream() }, true
}

// noRelease is the release of a request admit counts against no cap.
func noRelease() {}

// charge charges the request to its caller's request budget, answering 429
// if it is over, and arranges the RateLimit-* headers. It reports whether
// the request goes on.
func (e *edge) charge(ctx context.Context, w http.ResponseWriter, er *edgeRequest, upgrade bool) bool {
	if e.limits == nil {
		return true
	}
	q, err := e.limits.ChargeRequest(ctx)
	er.rate.quota, er.rate.charged, er.rated = q, !upgrade, true
	if err != nil {
		er.rate.refused(err)
		er.rate.setHeaders(w.Header(), time.Now())
		writeError(w, 0, err)
		return false
	}
	if upgrade {
		// The upgrade response is the only one with headers.
		er.rate.setHeaders(w.Header(), time.Now())
	} else {
		er.w.rate = &er.rate
	}
	return true
}

// subscribes reports whether the GraphQL request r (with body) runs a
// subscription. A request that cannot be told (a persisted query sent by
// hash alone, a document that does not parse) does not: it is charged as
// any request is, and fails later if it is bad.
func subscribes(r *http.Request, body []byte) bool {
	var params struct {
		Query         string `json:"query"`
		OperationName string `json:"operationName"`
	}
	if r.Method == http.MethodGet {
		params.Query, params.OperationName = r.URL.Query().Get("query"), r.URL.Query().Get("operationName")
	} else if json.Unmarshal(body, &params) != nil {
		return false
	}
	if params.Query == "" {
		return false
	}
	doc, err := parser.ParseQuery(&ast.Source{Input: params.Query})
	if err != nil {
		return false
	}
	op := doc.Operations.ForName(params.OperationName)
	return op != nil && op.Operation == ast.Subscription
}

// readBody refuses a declared oversized body at once with 413, and reads
// the rest whole before the handler runs, within the body timeout: a body
// that does not arrive in time (a client sending a byte now and then) is
// refused with 408 and its connection let go, and one that outgrows the
// limit (an undeclared, chunked one) with 413. Reading it here, rather than
// letting the transport fail halfway, gives the client the same answer
// either way; the read deadline is lifted once the body is in, so the
// streams that follow a request (SSE) are not cut. It reports whether the
// request goes on, and returns the body.
func (e *edge) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	tooLarge := func(n string) ([]byte, bool) {
		writeError(w, http.StatusRequestEntityTooLarge, domain.Errorf(domain.EINVALID,
			"request body of %s bytes exceeds the limit of %d bytes (RDEV_MAX_BODY_BYTES)", n, e.maxBody))
		return nil, false
	}
	if r.ContentLength > e.maxBody {
		return tooLarge(strconv.FormatInt(r.ContentLength, 10))
	}
	if r.Body == nil || r.Body == http.NoBody {
		return nil, true
	}
	rc := http.NewResponseController(w)
	// Not every writer reaches the connection (tests' recorders); there
	// the body is read without a deadline.
	deadline := rc.SetReadDeadline(time.Now().Add(e.bodyTimeout)) == nil
	b, err := readAll(io.LimitReader(r.Body, e.maxBody+1), r.ContentLength)
	if deadline {
		_ = rc.SetReadDeadline(time.Time{})
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestTimeout, domain.Errorf(domain.EINVALID,
			"the request body did not arrive within %s", e.bodyTimeout))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, domain.Errorf(domain.EINVALID, "could not read the request body"))
		return nil, false
	case int64(len(b)) > e.maxBody:
		return tooLarge("more than " + strconv.FormatInt(e.maxBody, 10))
	}
	r.Body = io.NopCloser(bytes.NewReader(b))
	return b, true
}

// readAll reads r to its end into a buffer sized for the declared length
// (if any) and one byte more, so that a body of the length it declared is
// read without the buffer growing.
func readAll(r io.Reader, declared int64) ([]byte, error) {
	if declared <= 0 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, declared+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			return b, nil
		} else if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // more than declared: grow
		}
	}
}

// edgeWriter is the writer next answers through. As the response starts it
// turns a 200 into a 503 with Retry-After when hint says the operation
// found something it needs unavailable (so that HTTP clients and proxies
// retry it as they retry any outage; a stream (SSE) has begun with 200
// before it can fail, and its errors carry extensions.retryAfterSeconds
// instead), gives a refused request the status of its media type, and sets
// rate's RateLimit-* headers and the negotiated Content-Type. An error
// status and its body are held back, and so is a refusal's, so that finish
// can add the extensions.code that gqlgen's own answers lack and drop the
// data entry that a refused request has none of.
type edgeWriter struct {
	http.ResponseWriter
	hint    *retryHint   // nil: the status is not the operation's
	rate    *rateRequest // nil: no rate-limit headers
	refusal *refusal     // nil: a stream, whose status is its transport's
	media   string       // the negotiated media type; "" for a stream
	started bool         // the status has been decided
	passed  bool         // the status has been written through
	status  int          // the held-back status
	held    *bytes.Buffer
}

// WriteHeader decides the status as the type says, and passes a success
// status on or holds an error status back.
func (w *edgeWriter) WriteHeader(status int) {
	if w.started {
		return
	}
	w.started = true
	refused := w.refusal != nil && w.refusal.refused
	switch {
	case refused:
		if status = w.refusal.status(w.media); status == http.StatusServiceUnavailable {
			setRetryAfter(w.Header())
		}
	case status == http.StatusOK && w.hint != nil && w.hint.serviceUnavailable():
		setRetryAfter(w.Header())
		status = http.StatusServiceUnavailable
	}
	if w.rate != nil {
		w.rate.setHeaders(w.Header(), time.Now())
	}
	if status >= http.StatusBadRequest || refused {
		w.status, w.held = status, &bytes.Buffer{}
		return
	}
	if w.media != "" {
		w.Header()["Content-Type"] = contentTypes[w.media]
	}
	w.passed = true
	w.ResponseWriter.WriteHeader(status)
}

// Write starts the response, as WriteHeader(200) would, if it has not, then
// passes a success body on and holds an error body back.
func (w *edgeWriter) Write(p []byte) (int, error) {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if w.held != nil {
		return w.held.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

// Flush lets SSE stream through.
func (w *edgeWriter) Flush() {
	if !w.started {
		w.WriteHeader(http.StatusOK)
	}
	if w.held == nil {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *edgeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish writes the held-back response, with codes, in the negotiated
// media type.
func (w *edgeWriter) finish(r *http.Request) {
	status := w.status
	var body struct {
		Errors []map[string]any `json:"errors"`
	}
	if err := json.Unmarshal(w.held.Bytes(), &body); err != nil || len(body.Errors) == 0 {
		w.ResponseWriter.WriteHeader(status)
		_, _ = w.ResponseWriter.Write(w.held.Bytes())
		return
	}
	if status == http.StatusNotAcceptable && r.Method == http.MethodGet {
		status = http.StatusMethodNotAllowed
		w.Header().Set("Allow", "POST")
	}
	for _, e := range body.Errors {
		switch e["message"] {
		case "transport not supported":
			e["message"] = "unsupported request: send a POST with Content-Type application/json, a GET with the query in its URL, or a WebSocket upgrade"
		case "GET requests only allow query operations":
			e["message"] = "GET runs only queries: send mutations and subscriptions by POST or WebSocket"
		}
		ext, _ := e["extensions"].(map[string]any)
		if ext == nil {
			ext = map[string]any{}
			e["extensions"] = ext
		}
		if _, ok := ext["code"]; !ok {
			ext["code"] = domain.EINVALID
		}
	}
	b, err := json.Marshal(body)
	if err != nil {
		b = w.held.Bytes()
	}
	media := w.media
	if media == "" {
		media = mediaJSON // a stream refused before it began
	}
	w.Header()["Content-Type"] = contentTypes[media]
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(status)
	_, _ = w.ResponseWriter.Write(b)
}
