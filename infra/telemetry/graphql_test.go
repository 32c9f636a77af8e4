package telemetry_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/testserver"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

// newGraphQLServer returns gqlgen's test schema behind the metrics
// extension, then an interceptor that refuses operations named "Limited" as
// RATE_LIMITED, the way rdev's rate limiter answers.
func newGraphQLServer(t *testing.T, m *telemetry.Metrics) (*testserver.TestServer, *httptest.Server) {
	t.Helper()
	srv := testserver.New()
	srv.AddTransport(transport.SSE{})
	srv.AddTransport(transport.POST{})
	srv.Use(m.GraphQL())
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		if graphql.GetOperationContext(ctx).Operation.Name == "Limited" {
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
				Message: "rate limited", Extensions: map[string]any{"code": "RATE_LIMITED"},
			}}})
		}
		return next(ctx)
	})
	ts := httptest.NewServer(m.Middleware(srv))
	t.Cleanup(ts.Close)
	return srv, ts
}

func post(t *testing.T, url, body string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
}

func TestGraphQL_Operations(t *testing.T) {
	m := telemetry.New()
	_, ts := newGraphQLServer(t, m)

	post(t, ts.URL, `{"query":"query Names { name }"}`)
	post(t, ts.URL, `{"query":"query Names { name }"}`)
	post(t, ts.URL, `{"query":"{ name }"}`)
	post(t, ts.URL, `{"query":"mutation Limited { name }"}`)
	post(t, ts.URL, `{"query":"{ nope }"}`)
	post(t, ts.URL, `{"query":"{"}`)

	for _, tc := range []struct {
		typ, name, code string
		want            float64
	}{
		{"query", "Names", "OK", 2},
		{"query", "anonymous", "OK", 1},
		{"mutation", "Limited", "RATE_LIMITED", 1},
		{"unknown", "other", "GRAPHQL_VALIDATION_FAILED", 1},
		{"unknown", "other", "GRAPHQL_PARSE_FAILED", 1},
	} {
		got := testutil.ToFloat64(m.GraphQLOperations().WithLabelValues(tc.typ, tc.name, tc.code))
		if got != tc.want {
			t.Errorf("rdev_graphql_operations_total{type=%q,name=%q,code=%q} = %v, want %v", tc.typ, tc.name, tc.code, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(m.RateLimitRejections().WithLabelValues("graphql")); got != 1 {
		t.Errorf("graphql rate-limit rejections = %v, want 1", got)
	}
	// Operations are timed, refused ones too; documents that never became
	// an operation (unparsable, invalid) are not.
	if n := testutil.CollectAndCount(m.GraphQLDuration()); n != 3 {
		t.Errorf("duration series = %d, want 3 (Names, anonymous, Limited)", n)
	}
	if n := histogramCount(t, m.GraphQLDuration(), "query", "Names"); n != 2 {
		t.Errorf("query Names timed %d times, want 2", n)
	}
}

func TestGraphQL_OperationNamesAreBounded(t *testing.T) {
	m := telemetry.New()
	_, ts := newGraphQLServer(t, m)
	for i := range telemetry.MaxOperationNames + 5 {
		post(t, ts.URL, `{"query":"query Op`+strings.Repeat("x", i%3)+itoa(i)+` { name }"}`)
	}
	// A name longer than a label may be is "other" too.
	post(t, ts.URL, `{"query":"query `+strings.Repeat("Long", 20)+` { name }"}`)
	if got := testutil.ToFloat64(m.GraphQLOperations().WithLabelValues("query", "other", "OK")); got != 6 {
		t.Errorf("operations counted as other = %v, want 6", got)
	}
	if n := testutil.CollectAndCount(m.GraphQLOperations()); n != telemetry.MaxOperationNames+1 {
		t.Errorf("series = %d, want %d", n, telemetry.MaxOperationNames+1)
	}
}

// histogramCount returns the observations in h's series of labels.
func histogramCount(t *testing.T, h *prometheus.HistogramVec, labels ...string) uint64 {
	t.Helper()
	var pb dto.Metric
	if err := h.WithLabelValues(labels...).(prometheus.Metric).Write(&pb); err != nil {
		t.Fatal(err)
	}
	return pb.GetHistogram().GetSampleCount()
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func TestGraphQL_Subscriptions(t *testing.T) {
	m := telemetry.New()
	srv, ts := newGraphQLServer(t, m)

	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, ts.URL, strings.NewReader(`{"query":"subscription Watch { name }"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	srv.SendNextSubscriptionMessage()
	r := bufio.NewReader(resp.Body)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data:") {
			break
		}
	}
	if got := testutil.ToFloat64(m.Subscriptions()); got != 1 {
		t.Errorf("rdev_graphql_subscriptions while one runs = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.GraphQLOperations().WithLabelValues("subscription", "Watch", "OK")); got != 1 {
		t.Errorf("subscription counted %v times, want 1", got)
	}
	srv.SendCompleteSubscriptionMessage()
	waitFor(t, "the subscription gauge to drop", func() bool { return testutil.ToFloat64(m.Subscriptions()) == 0 })
	// The SSE stream is counted as a request, once its handler has
	// returned (after the gauge dropped), but not timed.
	waitFor(t, "the SSE request to be counted", func() bool {
		return testutil.ToFloat64(m.HTTPRequests().WithLabelValues("unmatched", "POST", "200")) == 1
	})
	if n := testutil.CollectAndCount(m.HTTPDuration()); n != 0 {
		t.Errorf("an SSE stream was timed: %d series", n)
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestGraphQL_SubscriptionEndsWithItsContext(t *testing.T) {
	m := telemetry.New()
	ext := m.GraphQL()
	oc := &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Subscription, Name: "Watch"}}
	ctx, cancel := context.WithCancel(graphql.WithOperationContext(t.Context(), oc))
	defer cancel()
	event := &graphql.Response{Data: []byte(`{"name":"x"}`)}
	responses := ext.InterceptOperation(ctx, func(context.Context) graphql.ResponseHandler {
		return func(ctx context.Context) *graphql.Response {
			if ctx.Err() != nil {
				return nil
			}
			return event
		}
	})
	responses(ctx)
	if got := testutil.ToFloat64(m.Subscriptions()); got != 1 {
		t.Fatalf("rdev_graphql_subscriptions while one runs = %v, want 1", got)
	}
	// A client that goes away ends the subscription before its last
	// response is asked for; the last response must not end it twice.
	cancel()
	waitFor(t, "the subscription gauge to drop", func() bool { return testutil.ToFloat64(m.Subscriptions()) == 0 })
	if r := responses(ctx); r != nil {
		t.Fatalf("response after the end: %v", r)
	}
	if got := testutil.ToFloat64(m.Subscriptions()); got != 0 {
		t.Errorf("rdev_graphql_subscriptions after the end = %v, want 0", got)
	}
	if got := testutil.ToFloat64(m.GraphQLOperations().WithLabelValues("subscription", "Watch", "OK")); got != 1 {
		t.Errorf("subscription counted %v times, want 1", got)
	}
}
