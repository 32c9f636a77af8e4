package main_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rdev-hq/rdev/internal/testenv"
)

// scrape GETs url's metrics and parses them; it fails the test unless the
// answer is valid exposition text.
func scrape(t *testing.T, url string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, res.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, body)
	}
	return body, mfs
}

// value returns the sum of mf's samples whose labels include want, and
// whether there was one. Histograms give their sample count.
func value(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	var sum float64
	found := false
next:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

// promtoolCheck runs `promtool check metrics` on the exposition; it skips
// (fails under RDEV_REQUIRE_SERVICES=1) without promtool.
func promtoolCheck(t *testing.T, exposition string) {
	t.Helper()
	promtool, err := exec.LookPath("promtool")
	testenv.RequireService(t, "promtool (apt-get install prometheus)", err)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}

// TestE2E_Metrics runs commands through the real binary and scrapes
// /metrics: the command counters and histograms moved, the GraphQL and HTTP
// series are there, nothing secret or user-written is in the exposition, and
// promtool accepts it.
func TestE2E_Metrics(t *testing.T) {
	in := newInstance(t)
	s := in.serve()
	token, _ := in.createKey("--name", "metrics", "--admin")
	cli := &instance{t: t, env: append(append([]string{}, in.env...), "RDEV_SERVER="+s.url, "RDEV_KEY="+token)}

	const marker = "Zq7MetricsMarker"
	if _, errs, code := cli.cli("exec", "demo", "--", "sh", "-c", "echo "+marker+"; exit 3"); code != 3 {
		t.Fatalf("exec: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := cli.cli("exec", "demo", "--", "sh", "-c", "seq 1 1000"); code != 0 {
		t.Fatalf("exec: exit %d, stderr %q", code, errs)
	}
	// Invalid input and an unknown key give codes, not new series per text.
	if r := s.query(token, `query `+marker+`Op { commands(first: -1) { edges { node { id } } } }`, nil); r.code() == "" {
		t.Errorf("first: -1 answered without an error code: %+v", r)
	}
	if r := s.query("rdev_nope_nope", `{ projects(first: 1) { edges { node { id } } } }`, nil); r.code() != "UNAUTHENTICATED" {
		t.Errorf("bad key: %q", r.code())
	}

	body, mfs := scrape(t, s.url+"/metrics")
	for _, tc := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"rdev_commands_finished_total", map[string]string{"status": "FAILED"}, 1},
		{"rdev_commands_finished_total", map[string]string{"status": "SUCCEEDED"}, 1},
		{"rdev_command_duration_seconds", map[string]string{"status": "SUCCEEDED"}, 1},
		{"rdev_command_output_bytes_total", nil, float64(len(marker) + 1 + 3893)}, // seq 1 1000 is 3,893 bytes
		{"rdev_graphql_operations_total", map[string]string{"type": "mutation", "code": "OK"}, 2},
		{"rdev_graphql_operations_total", map[string]string{"name": marker + "Op", "code": "INVALID_INPUT"}, 1},
		{"rdev_graphql_operation_duration_seconds", map[string]string{"type": "mutation"}, 2},
		{"rdev_http_requests_total", map[string]string{"route": "/graphql", "code": "401"}, 1},
		{"rdev_http_request_duration_seconds", map[string]string{"route": "/graphql"}, 1},
		{"rdev_queue_depth", map[string]string{"priority": "NORMAL"}, 0},
		{"rdev_commands_running", nil, 0},
		{"rdev_projects", map[string]string{"status": "RUNNING"}, 1},
		{"rdev_db_connections_open", nil, 1},
		{"rdev_graphql_subscriptions", nil, 0},
		{"rdev_websocket_connections", nil, 0},
		{"rdev_audit_write_failures_total", nil, 0},
	} {
		got, ok := value(mfs, tc.name, tc.labels)
		if !ok || got < tc.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", tc.name, tc.labels, got, ok, tc.min)
		}
	}
	if got, _ := value(mfs, "rdev_command_output_bytes_total", nil); got > 10_000 {
		t.Errorf("output bytes %v: more than the commands wrote", got)
	}
	secret := token[strings.LastIndexByte(token, '_')+1:]
	for _, leak := range []string{token, secret, "seq 1 1000", "exit 3", "echo " + marker} {
		if strings.Contains(body, leak) {
			t.Errorf("the exposition contains %q", leak)
		}
	}
	if regexp.MustCompile(`cmd_[0-9A-Za-z]{8,}|"[0-9a-f]{8}-[0-9a-f]{4}-`).MatchString(body) {
		t.Errorf("the exposition seems to contain a command ID")
	}
	promtoolCheck(t, body)
}

var metricsListening = regexp.MustCompile(`"serving metrics" addr=(\S+)`)

// TestE2E_MetricsAddr serves /metrics on its own listener, and not on the
// main one; RDEV_METRICS=false serves it nowhere.
func TestE2E_MetricsAddr(t *testing.T) {
	t.Run("Separate", func(t *testing.T) {
		s := newInstance(t, "RDEV_METRICS_ADDR=127.0.0.1:0").serve()
		if !s.waitOutput("serving metrics") {
			t.Fatalf("no metrics listener: %s", s.output())
		}
		m := metricsListening.FindStringSubmatch(s.output())
		if m == nil {
			t.Fatalf("metrics address not logged: %s", s.output())
		}
		if code, _ := s.get("/healthz"); code != 200 {
			t.Fatalf("healthz: %d", code)
		}
		if code, _ := s.get("/metrics"); code != 404 {
			t.Errorf("main listener /metrics: %d, want 404", code)
		}
		_, mfs := scrape(t, "http://"+m[1]+"/metrics")
		if got, _ := value(mfs, "rdev_http_requests_total", map[string]string{"route": "GET /healthz", "code": "200"}); got != 1 {
			t.Errorf("healthz requests = %v, want 1", got)
		}
	})
	t.Run("Off", func(t *testing.T) {
		s := newInstance(t, "RDEV_METRICS=false").serve()
		if code, _ := s.get("/metrics"); code != 404 {
			t.Errorf("/metrics with RDEV_METRICS=false: %d, want 404", code)
		}
	})
}

// TestE2E_MetricsWebSocket holds a graphql-transport-ws subscription open
// and watches the connection and subscription gauges rise, then fall when
// the client goes away.
func TestE2E_MetricsWebSocket(t *testing.T) {
	in := newInstance(t)
	s := in.serve()
	token, _ := in.createKey("--name", "ws", "--admin")

	gauges := func() (conns, subs float64) {
		_, mfs := scrape(t, s.url+"/metrics")
		conns, _ = value(mfs, "rdev_websocket_connections", nil)
		subs, _ = value(mfs, "rdev_graphql_subscriptions", nil)
		return conns, subs
	}
	waitGauges := func(wantConns, wantSubs float64) {
		t.Helper()
		var conns, subs float64
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if conns, subs = gauges(); conns == wantConns && subs == wantSubs {
				return
			}
		}
		t.Fatalf("connections %v, subscriptions %v; want %v and %v", conns, subs, wantConns, wantSubs)
	}

	d := gorilla.Dialer{Subprotocols: []string{"graphql-transport-ws"}}
	c, resp, err := d.DialContext(t.Context(), "ws"+strings.TrimPrefix(s.url, "http")+"/graphql", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	defer func() { _ = c.Close() }()
	if err := c.WriteJSON(map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + token}}); err != nil {
		t.Fatal(err)
	}
	var ack struct{ Type string }
	if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_init answered %q, %v", ack.Type, err)
	}
	if err := c.WriteJSON(map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{
		"query": `subscription Watch { projectStatus { id status } }`,
	}}); err != nil {
		t.Fatal(err)
	}
	waitGauges(1, 1)
	_ = c.Close()
	waitGauges(0, 0)
	_, mfs := scrape(t, s.url+"/metrics")
	if got, _ := value(mfs, "rdev_http_requests_total", map[string]string{"route": "/graphql", "code": "101"}); got != 1 {
		t.Errorf("upgrades counted: %v, want 1", got)
	}
}
