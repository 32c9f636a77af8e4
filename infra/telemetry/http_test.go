package telemetry_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

func TestMetrics_Middleware(t *testing.T) {
	m := telemetry.New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/graphql", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTooManyRequests) })
	upgrader := websocket.Upgrader{}
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	})
	ts := httptest.NewServer(m.Middleware(mux))
	defer ts.Close()

	get := func(path string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	get("/healthz")
	get("/healthz")
	get("/graphql")
	get("/no/such/path/9f1c") // the raw path must not become a label

	for _, tc := range []struct {
		route, code string
		want        float64
	}{
		{"GET /healthz", "200", 2},
		{"/graphql", "429", 1},
		{"unmatched", "404", 1},
	} {
		if got := testutil.ToFloat64(m.HTTPRequests().WithLabelValues(tc.route, "GET", tc.code)); got != tc.want {
			t.Errorf("requests{route=%q,code=%q} = %v, want %v", tc.route, tc.code, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(m.RateLimitRejections().WithLabelValues("http")); got != 1 {
		t.Errorf("http rate-limit rejections = %v, want 1", got)
	}
	if n := histogramCount(t, m.HTTPDuration(), "GET /healthz", "GET"); n != 2 {
		t.Errorf("healthz timed %d times, want 2", n)
	}

	ws, resp, err := websocket.DefaultDialer.DialContext(t.Context(), "ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	waitFor(t, "the connection to be counted", func() bool { return testutil.ToFloat64(m.WebSocketConnections()) == 1 })
	_ = ws.Close()
	waitFor(t, "the connection to be let go", func() bool { return testutil.ToFloat64(m.WebSocketConnections()) == 0 })
	if got := testutil.ToFloat64(m.HTTPRequests().WithLabelValues("GET /ws", "GET", "101")); got != 1 {
		t.Errorf("upgrades counted = %v, want 1", got)
	}
	if n := histogramCount(t, m.HTTPDuration(), "GET /ws", "GET"); n != 0 {
		t.Errorf("a WebSocket connection was timed")
	}
}
