package resolvers

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// limitBody refuses a declared oversized body at once with 413, and reads
// the rest whole before the handler runs, within timeout: a body that does
// not arrive in time (a client sending a byte now and then) is refused
// with 408 and its connection let go, and one that outgrows max bytes (an
// undeclared, chunked one) with 413. Reading it here, rather than letting
// the transport fail halfway, gives the client the same answer either way;
// the read deadline is lifted once the body is in, so the streams that
// follow a request (SSE) are not cut.
func limitBody(next http.Handler, limit int64, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tooLarge := func(n string) {
			writeError(w, http.StatusRequestEntityTooLarge, domain.Errorf(domain.EINVALID,
				"request body of %s bytes exceeds the limit of %d bytes (RDEV_MAX_BODY_BYTES)", n, limit))
		}
		if r.ContentLength > limit {
			tooLarge(strconv.FormatInt(r.ContentLength, 10))
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			rc := http.NewResponseController(w)
			// Not every writer reaches the connection (tests' recorders);
			// there the body is read without a deadline.
			deadline := rc.SetReadDeadline(time.Now().Add(timeout)) == nil
			b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			if deadline {
				_ = rc.SetReadDeadline(time.Time{})
			}
			switch {
			case errors.Is(err, os.ErrDeadlineExceeded):
				w.Header().Set("Connection", "close")
				writeError(w, http.StatusRequestTimeout, domain.Errorf(domain.EINVALID,
					"the request body did not arrive within %s", timeout))
				return
			case err != nil:
				writeError(w, http.StatusBadRequest, domain.Errorf(domain.EINVALID, "could not read the request body"))
				return
			case int64(len(b)) > limit:
				tooLarge("more than " + strconv.FormatInt(limit, 10))
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		next.ServeHTTP(w, r)
	})
}

// withErrorCodes gives every error answered with an HTTP error status an
// extensions.code. gqlgen's transports answer some requests themselves,
// without the error presenter (a request no transport takes, a GET of a
// mutation, undecodable GET variables), with a bare message; those become
// INVALID_INPUT, and a GET of a mutation becomes 405 as GraphQL over HTTP
// asks. WebSocket upgrades pass untouched.
func withErrorCodes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		cw := &codeWriter{ResponseWriter: w}
		next.ServeHTTP(cw, r)
		if cw.buf != nil {
			cw.finish(r)
		}
	})
}

// codeWriter holds back the body of an error response, so that finish can
// add the codes it lacks.
type codeWriter struct {
	http.ResponseWriter
	status  int
	buf     *bytes.Buffer
	written bool
}

// WriteHeader passes a success status on and holds an error status back.
func (c *codeWriter) WriteHeader(status int) {
	if c.written || c.buf != nil {
		return
	}
	if status >= http.StatusBadRequest {
		c.status, c.buf = status, &bytes.Buffer{}
		return
	}
	c.written = true
	c.ResponseWriter.WriteHeader(status)
}

// Write passes a success body on and holds an error body back.
func (c *codeWriter) Write(b []byte) (int, error) {
	if c.buf != nil {
		return c.buf.Write(b)
	}
	c.written = true
	return c.ResponseWriter.Write(b)
}

// Flush lets SSE stream through.
func (c *codeWriter) Flush() {
	if c.buf == nil {
		_ = http.NewResponseController(c.ResponseWriter).Flush()
	}
}

// Unwrap gives http.ResponseController the underlying writer.
func (c *codeWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// finish writes the held-back error response, with codes.
func (c *codeWriter) finish(r *http.Request) {
	status := c.status
	var body struct {
		Errors []map[string]any `json:"errors"`
	}
	if err := json.Unmarshal(c.buf.Bytes(), &body); err != nil || len(body.Errors) == 0 {
		c.ResponseWriter.WriteHeader(status)
		_, _ = c.ResponseWriter.Write(c.buf.Bytes())
		return
	}
	if status == http.StatusNotAcceptable && r.Method == http.MethodGet {
		status = http.StatusMethodNotAllowed
		c.Header().Set("Allow", "POST")
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
		b = c.buf.Bytes()
	}
	c.Header().Set("Content-Type", "application/json")
	c.Header().Del("Content-Length")
	c.ResponseWriter.WriteHeader(status)
	_, _ = c.ResponseWriter.Write(b)
}
