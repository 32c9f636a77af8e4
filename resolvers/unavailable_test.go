package resolvers

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/rdev-hq/rdev/domain"
)

// An operation that fails because storage is down is UNAVAILABLE with a
// retry hint: 503 and Retry-After over HTTP, extensions.retryAfterSeconds
// wherever the error goes, and never 401, 403 or 500.
func TestHandler_Unavailable(t *testing.T) {
	ts := newTestServer(t)
	checkUnavailable := func(t *testing.T, r gqlResponse) {
		t.Helper()
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") != "1" {
			t.Errorf("status %d, Retry-After %q; want 503 and 1", r.status, r.header.Get("Retry-After"))
		}
		if r.code() != domain.EUNAVAILABLE || r.Errors[0].Message != "the database is unavailable" {
			t.Fatalf("errors %+v; want UNAVAILABLE", r.Errors)
		}
		if s, _ := r.Errors[0].Extensions["retryAfterSeconds"].(float64); s != 1 {
			t.Errorf("extensions %v; want retryAfterSeconds 1", r.Errors[0].Extensions)
		}
		if strings.Contains(ts.logs.String(), "internal error") {
			t.Errorf("an outage was logged as an internal error: %s", ts.logs)
		}
	}

	t.Run("Query", func(t *testing.T) {
		checkUnavailable(t, ts.query(t, ts.admin, `{ project(id: "down") { id } }`, nil))
	})

	t.Run("Mutation", func(t *testing.T) {
		r := ts.query(t, ts.admin, `mutation { executeCommand(input: {projectId: "down", argv: ["true"]}) { command { id } } }`, nil)
		checkUnavailable(t, r)
	})

	t.Run("OtherErrorsStay200", func(t *testing.T) {
		r := ts.query(t, ts.admin, `{ project(id: "nope") { id } }`, nil)
		if r.status != http.StatusOK || r.header.Get("Retry-After") != "" {
			t.Errorf("NOT_FOUND: status %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
		}
	})

	// A key not yet cached must be read from the store, which is down.
	t.Run("Auth", func(t *testing.T) {
		token := ts.createKey(t, "uncached", domain.ScopeAdmin)
		ts.keys.setDown(true)
		defer ts.keys.setDown(false)
		checkUnavailable(t, ts.query(t, token, `{ viewer { id } }`, nil))
	})

	t.Run("WebsocketInit", func(t *testing.T) {
		token := ts.createKey(t, "uncached", domain.ScopeAdmin)
		ts.keys.setDown(true)
		defer ts.keys.setDown(false)
		a := &authenticator{keys: ts.svc}
		ctx := domain.NewContextWithCaller(t.Context(), &domain.Caller{Addr: netip.MustParseAddr("127.0.0.1")})
		_, err := a.websocketInit(ctx, transport.InitPayload{"authorization": "Bearer " + token})
		if domain.ErrorCode(err) != domain.EUNAVAILABLE || domain.ErrorMessage(err) != "the database is unavailable" {
			t.Errorf("connection_init: %v; want UNAVAILABLE, so the transport closes with 1013", err)
		}
	})

	t.Run("SSE", func(t *testing.T) {
		res := ts.postSSE(t, t.Context(), `{"query":"subscription { commandEvents(projectId: \"down\") { id } }"}`)
		defer func() { _ = res.Body.Close() }()
		body, _ := io.ReadAll(res.Body)
		event := sseEvent(t, string(body), "next")
		var r gqlResponse
		if err := json.Unmarshal([]byte(event), &r); err != nil {
			t.Fatalf("next event %q: %v", event, err)
		}
		if r.code() != domain.EUNAVAILABLE {
			t.Fatalf("next event %s; want an UNAVAILABLE error", event)
		}
		if s, _ := r.Errors[0].Extensions["retryAfterSeconds"].(float64); s != 1 {
			t.Errorf("extensions %v; want retryAfterSeconds 1", r.Errors[0].Extensions)
		}
	})
}

// sseEvent returns the data of the first event of kind in an SSE body.
func sseEvent(t *testing.T, body, kind string) string {
	t.Helper()
	for ev := range strings.SplitSeq(body, "\n\n") {
		if data, ok := strings.CutPrefix(ev, "event: "+kind+"\ndata: "); ok {
			return data
		}
	}
	t.Fatalf("no %s event in %q", kind, body)
	return ""
}

// A mutation's error below its root field comes after the mutation took
// effect: retrying it whole could make it twice, so it is not a 503.
func TestRetryHint_MutationEffectStands(t *testing.T) {
	for _, tt := range []struct {
		name     string
		mutation bool
		path     int
		want     bool
	}{
		{"QueryRoot", false, 1, true},
		{"QueryNested", false, 3, true},
		{"Operation", true, 0, true},
		{"MutationRoot", true, 1, true},
		{"MutationNested", true, 3, false},
	} {
		h := &retryHint{}
		h.unavailable(tt.mutation, tt.path)
		if got := h.serviceUnavailable(); got != tt.want {
			t.Errorf("%s: 503 = %v, want %v", tt.name, got, tt.want)
		}
	}
	var none *retryHint
	none.unavailable(false, 1) // not an HTTP request: nothing to do
}

// failingOutput is a command store whose one command is RUNNING and whose
// output cannot be read: its database went down mid-stream.
type failingOutput struct {
	*memCommands
}

func (failingOutput) FindCommandByID(_ context.Context, id string) (*domain.Command, error) {
	return &domain.Command{ID: id, ProjectID: "alpha", Status: domain.CommandRunning, Argv: []string{"true"}}, nil
}

func (failingOutput) ReadOutput(context.Context, string, int64, int, int) ([]domain.OutputChunk, error) {
	return nil, errDown
}

// A subscription whose stream fails ends with an error the client can
// resume from, never with a bare complete.
func TestHandler_SubscriptionStorageFails(t *testing.T) {
	ts := newTestServer(t, func(r *Resolver) {
		r.CommandService = domain.NewCommandService(failingOutput{&memCommands{}}, &memProjects{}, nopHub{}, nil, nil, domain.DefaultCommandLimits, nil)
	})
	res := ts.postSSE(t, t.Context(), `{"query":"subscription { commandOutput(commandId: \"0000000000000001\", afterSeq: 7) { __typename } }"}`)
	defer func() { _ = res.Body.Close() }()
	body, _ := io.ReadAll(res.Body)
	event := sseEvent(t, string(body), "next")
	var r gqlResponse
	if err := json.Unmarshal([]byte(event), &r); err != nil {
		t.Fatalf("next event %q: %v", event, err)
	}
	if r.code() != domain.EUNAVAILABLE || r.Errors[0].Message != "the database is unavailable" {
		t.Fatalf("the stream ended with %s; want an UNAVAILABLE error", body)
	}
	if s, _ := r.Errors[0].Extensions["retryAfterSeconds"].(float64); s != 1 {
		t.Errorf("extensions %v; want retryAfterSeconds 1", r.Errors[0].Extensions)
	}
}
