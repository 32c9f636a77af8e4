package telemetry

import (
	"bufio"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Middleware counts and times the requests next answers. next should be (or
// end in) an http.ServeMux: the route label is the pattern it matched
// ("/graphql", "GET /healthz"), or "unmatched", never the raw path. Upgraded
// (WebSocket) connections are counted as open connections while they last,
// and neither they nor SSE streams are timed, as their length is the
// client's choice.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &responseWriter{ResponseWriter: w, connections: m.wsActive}
		defer rw.closed()
		next.ServeHTTP(rw, r)
		route, method := routeOf(r, "other")
		status := rw.code()
		m.requestsBy.get(requestKey{routeKey{route, method}, status}).Inc()
		if status == http.StatusTooManyRequests {
			m.rateLimited.WithLabelValues("http").Inc()
		}
		if !rw.hijacked && !isEventStream(rw.Header()) {
			m.durationBy.get(routeKey{route, method}).Observe(time.Since(start).Seconds())
		}
	})
}

// routeKey is the labels of a request's duration: its route pattern and
// method.
type routeKey struct{ route, method string }

// requestKey is the labels of a request's count: its route pattern, method
// and status code.
type requestKey struct {
	routeKey
	code int
}

// requestCounter returns the httpRequests child for k.
func (m *Metrics) requestCounter(k requestKey) prometheus.Counter {
	return m.httpRequests.WithLabelValues(k.route, k.method, strconv.Itoa(k.code))
}

// requestObserver returns the httpDuration child for k.
func (m *Metrics) requestObserver(k routeKey) prometheus.Observer {
	return m.httpDuration.WithLabelValues(k.route, k.method)
}

// isEventStream reports whether h is the header of an SSE stream. The
// map is read directly: the key is canonical already.
func isEventStream(h http.Header) bool {
	v := h["Content-Type"]
	return len(v) > 0 && strings.HasPrefix(v[0], "text/event-stream")
}

// routeOf returns the pattern r matched ("unmatched" when none did) and its
// method, or other for a method outside the standard ones.
func routeOf(r *http.Request, other string) (route, method string) {
	route, method = r.Pattern, r.Method
	if route == "" {
		route = "unmatched"
	}
	if !knownMethod(method) {
		method = other
	}
	return route, method
}

func knownMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return true
	}
	return false
}

// responseWriter records the status and whether the connection was taken
// over. It keeps Flush (SSE) and Hijack (WebSocket) working, and Unwrap lets
// http.ResponseController reach the rest.
type responseWriter struct {
	http.ResponseWriter
	// connections, if set, counts the connection as open from when it is
	// taken over until closed is called.
	connections prometheus.Gauge
	status      int
	hijacked    bool
}

// code is the status answered: 101 for a connection taken over, 200 when
// none was written.
func (w *responseWriter) code() int {
	switch {
	case w.hijacked:
		return http.StatusSwitchingProtocols
	case w.status == 0:
		return http.StatusOK
	}
	return w.status
}

// WriteHeader records the first status sent.
func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

// Write sends b, with status 200 if none was sent.
func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush sends what is buffered (SSE events).
func (w *responseWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack hands the connection over (a WebSocket upgrade).
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil && !w.hijacked {
		w.hijacked = true
		if w.connections != nil {
			w.connections.Inc()
		}
	}
	return c, rw, err
}

// closed ends the count of a connection taken over, once its handler has
// returned.
func (w *responseWriter) closed() {
	if w.hijacked && w.connections != nil {
		w.connections.Dec()
	}
}

// Unwrap returns the underlying writer, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
