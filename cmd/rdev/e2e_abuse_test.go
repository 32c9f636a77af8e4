package main_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// abuseEnv is the configuration TestE2E_Abuse runs rdev with: the default
// limits, with a small WebSocket read limit and subscription cap, a short
// keep-alive, and introspection and suggestions off as in production.
var abuseEnv = []string{
	"RDEV_WS_READ_LIMIT=65536",
	"RDEV_MAX_SUBSCRIPTIONS_PER_CONNECTION=3",
	"RDEV_KEEPALIVE=1s",
	"RDEV_INTROSPECTION=false",
	"RDEV_FIELD_SUGGESTIONS=false",
}

// httpAbuse is one hostile HTTP request and the answer it must get.
type httpAbuse struct {
	name    string
	method  string // POST when empty
	ctype   string // application/json when empty; "-" for none
	query   string // GET: the raw URL query
	body    string
	chunked bool // send the body without a Content-Length
	token   string
	status  int
	code    string // extensions.code of the first error; "" for none
	msg     string // part of the first error's message
	nomsg   string // must not be in the body
}

// gql is the JSON body of one GraphQL request.
func gql(query string, vars map[string]any) string {
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return string(b)
}

func repeat(s string, n int, sep string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf(s, i)
	}
	return strings.Join(parts, sep)
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func httpAbuses(token string) []httpAbuse {
	deep := `{ projects(first: 1) { nodes { commands(first: 1) { nodes { project { commands(first: 1) { nodes { project { commands(first: 1) { nodes { project { commands(first: 1) { nodes { id } } } } } } } } } } } } } }`
	pq := func(hash string, version int) string {
		b, _ := json.Marshal(map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": version, "sha256Hash": hash}}})
		return string(b)
	}
	const ok = http.StatusOK
	// A request refused before its operation ran, sent as Apollo Client
	// sends it (accepting application/graphql-response+json): 400. (Under
	// application/json it would be 200; see TestHandler_MediaTypes.)
	const invalid = http.StatusBadRequest
	return []httpAbuse{
		// Shape limits.
		{name: "DeepNesting", body: gql(deep, nil), status: invalid, code: "INVALID_INPUT", msg: "has depth 14, which exceeds the limit of 12"},
		{name: "DeepNestingThroughFragments", body: gql(`{ projects(first: 1) { nodes { ...A } } } fragment A on Project { commands(first: 1) { nodes { project { ...B } } } } fragment B on Project { commands(first: 1) { nodes { project { ...C } } } } fragment C on Project { commands(first: 1) { nodes { project { ...D } } } } fragment D on Project { commands(first: 1) { nodes { id } } }`, nil), status: invalid, code: "INVALID_INPUT", msg: "exceeds the limit of 12"},
		{name: "VeryDeepNesting", body: gql(strings.Repeat("{ viewer ", 5000)+strings.Repeat("}", 5000), nil), status: invalid, code: "GRAPHQL_PARSE_FAILED"},
		{name: "Aliases1000", body: gql("{ "+repeat("a%d: viewer { id }", 1000, " ")+" }", nil), status: invalid, code: "INVALID_INPUT", msg: "has 1000 aliases, which exceeds the limit of 50"},
		{name: "Aliases51", body: gql("{ "+repeat("a%d: health { ready }", 51, " ")+" }", nil), status: invalid, code: "INVALID_INPUT", msg: "51 aliases"},
		{name: "AliasesThroughFragments", body: gql(`{ `+repeat("v%d: viewer { ...K }", 10, " ")+` } fragment K on APIKey { `+repeat("x%d: id", 5, " ")+` }`, nil), status: invalid, code: "INVALID_INPUT", msg: "60 aliases"},
		{name: "Complexity", body: gql(`{ projects(first: 100) { nodes { commands(first: 100) { nodes { id argv } } } } }`, nil), status: invalid, code: "INVALID_INPUT", msg: "exceeds the limit of 5000"},
		{name: "ComplexityByVariable", body: gql(`query($n: Int) { commands(first: $n) { nodes { project { commands(first: $n) { nodes { id } } } } } }`, map[string]any{"n": 100}), status: invalid, code: "INVALID_INPUT", msg: "complexity"},
		{name: "TokenFlood", body: gql("{ viewer { "+strings.Repeat("id ", 20000)+"} }", nil), status: invalid, code: "INVALID_INPUT", msg: "exceeded token limit of 15000"},
		{name: "DirectiveFloodSame", body: gql("{ viewer "+strings.Repeat("@include(if: true) ", 1000)+"{ id } }", nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "can only be used once"},
		{name: "ErrorsCapped", body: gql("{ "+repeat("viewer { nope%d }", 200, " ")+" }", nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "Cannot query field"},
		{name: "DirectiveFloodTokens", body: gql("{ viewer "+strings.Repeat("@skip(if: false) ", 3000)+"{ id } }", nil), status: invalid, code: "INVALID_INPUT", msg: "token limit"},
		{name: "UnknownDirective", body: gql(`{ viewer @bogus { id } }`, nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "Unknown directive"},
		{name: "FragmentCycle", body: gql(`{ viewer { ...A } } fragment A on APIKey { id ...B } fragment B on APIKey { name ...A }`, nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "Cannot spread fragment"},
		{name: "FragmentSelfSpread", body: gql(`{ viewer { ...A } } fragment A on APIKey { ...A }`, nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "Cannot spread fragment"},
		{name: "ConflictingAliases", body: gql(`{ a: viewer { id } a: health { ready } }`, nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "DeepListLiteral", body: gql(`{ project(id: `+strings.Repeat("[", 3000)+`"x"`+strings.Repeat("]", 3000)+`) { id } }`, nil), status: invalid, code: "GRAPHQL_PARSE_FAILED", msg: "exceeded maximum nesting depth"},

		// Bodies.
		{name: "HugeBody", body: gql("{ viewer { id } }", map[string]any{"pad": strings.Repeat("x", 2<<20)}), status: http.StatusRequestEntityTooLarge, code: "INVALID_INPUT", msg: "exceeds the limit of 1048576 bytes"},
		{name: "HugeBodyChunked", body: gql("{ viewer { id } }", map[string]any{"pad": strings.Repeat("x", 2<<20)}), chunked: true, status: http.StatusRequestEntityTooLarge, code: "INVALID_INPUT", msg: "exceeds the limit"},
		{name: "HugeString", body: gql(`{ project(id: "`+strings.Repeat("p", 500_000)+`") { id } }`, nil), status: ok, code: "NOT_FOUND"},
		{name: "HugeStringVariable", body: gql(`query($id: ID!) { project(id: $id) { id } }`, map[string]any{"id": strings.Repeat("p", 500_000)}), status: ok, code: "NOT_FOUND"},
		{name: "OversizedVariables", body: gql(`{ viewer { id } }`, map[string]any{"a": strings.Repeat("v", 1<<20)}), status: http.StatusRequestEntityTooLarge, code: "INVALID_INPUT"},
		{name: "DeepVariableJSON", body: `{"query":"{ viewer { id } }","variables":{"a":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}}`, status: http.StatusBadRequest, code: "INVALID_INPUT", msg: "not a GraphQL request", nomsg: "[[["},
		{name: "InvalidUTF8InQuery", body: "{\"query\":\"{ viewer { id \xff\xfe } }\"}", status: invalid, code: "GRAPHQL_PARSE_FAILED"},
		{name: "InvalidUTF8InVariables", body: "{\"query\":\"query($id: ID!) { project(id: $id) { id } }\",\"variables\":{\"id\":\"\xff\xfe\xfd\"}}", status: ok, code: "NOT_FOUND"},
		{name: "InvalidJSON", body: `{"query": "{ viewer { id } }"`, status: http.StatusBadRequest, code: "INVALID_INPUT", msg: "not a GraphQL request", nomsg: "RawParams"},
		{name: "EmptyBody", body: ``, status: http.StatusBadRequest, code: "INVALID_INPUT"},
		{name: "JSONString", body: `"{ viewer { id } }"`, status: http.StatusBadRequest, code: "INVALID_INPUT", msg: "not a GraphQL request", nomsg: "graphql.RawParams"},
		{name: "QueryNotAString", body: `{"query": 5}`, status: http.StatusBadRequest, code: "INVALID_INPUT", nomsg: "Go value"},
		{name: "QueryNull", body: `{"query": null}`, status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "no operation provided"},
		{name: "VariablesNotAnObject", body: `{"query": "{ viewer { id } }", "variables": [1, 2]}`, status: http.StatusBadRequest, code: "INVALID_INPUT"},
		{name: "BatchArray", body: `[` + gql("{ viewer { id } }", nil) + `,` + gql("{ health { ready } }", nil) + `]`, status: http.StatusBadRequest, code: "INVALID_INPUT", msg: "batched operations (a JSON array) are not supported"},

		// Validation.
		{name: "UnknownField", body: gql(`{ viewer { nme } }`, nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: `Cannot query field "nme"`, nomsg: "Did you mean"},
		{name: "UnknownArgument", body: gql(`{ viewer(x: 1) { id } }`, nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "Unknown argument"},
		{name: "WrongVariableType", body: gql(`query($n: Int) { projects(first: $n) { nodes { id } } }`, map[string]any{"n": "ten"}), status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "cannot use string as Int"},
		{name: "MissingVariable", body: gql(`query($id: ID!) { project(id: $id) { id } }`, nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "must be defined"},
		{name: "WrongLiteralType", body: gql(`{ projects(first: "ten") { nodes { id } } }`, nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "FirstOutOfRange", body: gql(`{ projects(first: 100000) { nodes { id } } }`, nil), status: ok, code: "INVALID_INPUT", msg: "first: must be between 0 and 100"},
		{name: "Introspection", body: gql(`{ __schema { types { name } } }`, nil), status: ok, code: "INVALID_INPUT", msg: "introspection is disabled"},
		{name: "UnknownOperationName", body: `{"query":"query A { viewer { id } }","operationName":"B"}`, status: invalid, code: "GRAPHQL_VALIDATION_FAILED", msg: "operation B not found"},
		{name: "TwoOperationsNoName", body: gql(`query A { viewer { id } } query B { health { ready } }`, nil), status: invalid, code: "GRAPHQL_VALIDATION_FAILED"},

		// Transports and methods.
		{name: "ContentTypeText", ctype: "text/plain", body: gql(`{ viewer { id } }`, nil), status: http.StatusBadRequest, code: "INVALID_INPUT", msg: "unsupported request"},
		{name: "ContentTypeForm", ctype: "application/x-www-form-urlencoded", body: "query=%7B+viewer+%7B+id+%7D+%7D", status: http.StatusBadRequest, code: "INVALID_INPUT", msg: "unsupported request"},
		{name: "ContentTypeMultipart", ctype: "multipart/form-data; boundary=x", body: "--x--", status: http.StatusBadRequest, code: "INVALID_INPUT"},
		{name: "ContentTypeNone", ctype: "-", body: gql(`{ viewer { id } }`, nil), status: http.StatusBadRequest, code: "INVALID_INPUT"},
		{name: "MethodPut", method: http.MethodPut, body: gql(`{ viewer { id } }`, nil), status: http.StatusBadRequest, code: "INVALID_INPUT"},
		{name: "GetMutation", method: http.MethodGet, query: "query=" + url.QueryEscape(`mutation { revokeAPIKey(input: {id: "x"}) { apiKey { id } } }`), status: http.StatusMethodNotAllowed, code: "INVALID_INPUT", msg: "GET runs only queries"},
		{name: "GetSubscription", method: http.MethodGet, query: "query=" + url.QueryEscape(`subscription { projectStatus { id } }`), status: http.StatusMethodNotAllowed, code: "INVALID_INPUT"},
		{name: "GetBadVariables", method: http.MethodGet, query: "query=" + url.QueryEscape(`{ viewer { id } }`) + "&variables=%7Bnope", status: http.StatusBadRequest, code: "INVALID_INPUT", msg: "variables could not be decoded"},
		{name: "GetNoQuery", method: http.MethodGet, query: "", status: invalid, code: "GRAPHQL_VALIDATION_FAILED"},
		{name: "GetDeepNesting", method: http.MethodGet, query: "query=" + url.QueryEscape(deep), status: invalid, code: "INVALID_INPUT", msg: "depth"},

		// Persisted queries.
		{name: "PersistedQueryUnknown", body: pq(sha("{ never sent }"), 1), status: invalid, code: "PERSISTED_QUERY_NOT_FOUND", msg: "PersistedQueryNotFound"},
		{name: "PersistedQueryWrongVersion", body: pq(sha("{ x }"), 2), status: invalid, code: "INVALID_INPUT", msg: "unsupported APQ version"},
		{name: "PersistedQueryHashMismatch", body: `{"query":"{ viewer { id } }","extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}`, status: invalid, code: "INVALID_INPUT", msg: "hash does not match"},
		{name: "PersistedQueryNotAnObject", body: `{"extensions":{"persistedQuery":"yes"}}`, status: invalid, code: "INVALID_INPUT"},

		// Credentials.
		{name: "NoKey", body: gql(`{ viewer { id } }`, nil), token: "-", status: ok, code: "UNAUTHENTICATED"},
		{name: "MalformedKey", body: gql(`{ viewer { id } }`, nil), token: "rdev_\xff", status: http.StatusUnauthorized, code: "UNAUTHENTICATED"},
		{name: "HugeKey", body: gql(`{ viewer { id } }`, nil), token: "rdev_" + strings.Repeat("k", 100_000), status: http.StatusUnauthorized, code: "UNAUTHENTICATED"},
	}
}

func (s *server) abuse(t *testing.T, tt httpAbuse, token string) {
	method := tt.method
	if method == "" {
		method = http.MethodPost
	}
	u := s.url + "/graphql"
	if method == http.MethodGet {
		u += "?" + tt.query
	}
	var body io.Reader = strings.NewReader(tt.body)
	if tt.chunked {
		body = io.MultiReader(body) // hides the length: sent chunked
	}
	req, err := http.NewRequestWithContext(t.Context(), method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	switch tt.ctype {
	case "":
		req.Header.Set("Content-Type", "application/json")
	case "-":
	default:
		req.Header.Set("Content-Type", tt.ctype)
	}
	req.Header.Set("Accept", "application/graphql-response+json,application/json;q=0.9")
	switch tt.token {
	case "":
		req.Header.Set("Authorization", "Bearer "+token)
	case "-":
	default:
		req.Header.Set("Authorization", "Bearer "+tt.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	b, _ := io.ReadAll(res.Body)
	var r response
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("status %d, body not JSON: %.300s", res.StatusCode, b)
	}
	r.Status = res.StatusCode
	msg := ""
	if len(r.Errors) > 0 {
		msg = r.Errors[0].Message
	}
	if r.Status != tt.status || r.code() != tt.code || !strings.Contains(msg, tt.msg) {
		t.Errorf("got %d %q %.300q; want %d %q %q", r.Status, r.code(), msg, tt.status, tt.code, tt.msg)
	}
	if tt.nomsg != "" && bytes.Contains(b, []byte(tt.nomsg)) {
		t.Errorf("the answer says %q: %.300s", tt.nomsg, b)
	}
	for _, e := range r.Errors {
		if e.Extensions["code"] == nil {
			t.Errorf("an error without a code: %+v", e)
		}
	}
	if len(b) > 8<<10 && tt.code != "NOT_FOUND" {
		t.Errorf("a %d-byte answer: refusals should not echo the request", len(b))
	}
}

// wsAbuse is one hostile WebSocket client and how its connection must end.
type wsAbuse struct {
	name        string
	subprotocol string                    // graphql-transport-ws when empty
	header      http.Header               // of the upgrade request
	init        bool                      // do the handshake first, with the admin key
	frames      []wsFrame                 // then send these
	status      int                       // HTTP status of a refused upgrade
	close       int                       // the close code the server must send
	check       func(*gorilla.Conn) error // instead of close: what must arrive
}

type wsFrame struct {
	binary bool
	data   string
}

func text(s string) wsFrame { return wsFrame{data: s} }

func subscribe(id, query string) wsFrame {
	b, _ := json.Marshal(map[string]any{"type": "subscribe", "id": id, "payload": map[string]any{"query": query}})
	return text(string(b))
}

func wsAbuses() []wsAbuse {
	const watch = `subscription { projectStatus { id status } }`
	return []wsAbuse{
		{name: "WSBinaryFrame", frames: []wsFrame{{binary: true, data: `{"type":"connection_init"}`}}, close: 4400},
		{name: "WSBinaryFrameAfterInit", init: true, frames: []wsFrame{{binary: true, data: "\x00\x01\x02"}}, close: 4400},
		{name: "WSInvalidJSON", frames: []wsFrame{text("{not json")}, close: 4400},
		{name: "WSInvalidJSONAfterInit", init: true, frames: []wsFrame{text(`{"type":"subscribe","id":`)}, close: 4400},
		{name: "WSJSONArray", init: true, frames: []wsFrame{text(`[{"type":"ping"}]`)}, close: 4400},
		{name: "WSInvalidUTF8", init: true, frames: []wsFrame{text("{\"type\":\"\xff\xfe\"}")}, close: 4400},
		{name: "WSUnknownType", init: true, frames: []wsFrame{text(`{"type":"hello"}`)}, close: 4400},
		{name: "WSUnknownTypeLegacy", subprotocol: "graphql-ws", init: true, frames: []wsFrame{text(`{"type":"hello"}`)}, close: 4400},
		{name: "WSSubscribeBeforeInit", frames: []wsFrame{subscribe("1", watch)}, close: 4401},
		{name: "WSSecondInit", init: true, frames: []wsFrame{text(`{"type":"connection_init"}`)}, close: 4429},
		{name: "WSDuplicateID", init: true, frames: []wsFrame{subscribe("1", watch), subscribe("1", watch)}, close: 4409},
		{name: "WSSubscribeWithoutID", init: true, frames: []wsFrame{text(`{"type":"subscribe","payload":{"query":"{ viewer { id } }"}}`)}, close: 4400},
		{name: "WSPayloadNotAnObject", init: true, frames: []wsFrame{text(`{"type":"subscribe","id":"1","payload":"{ viewer { id } }"}`)}, close: 4400},
		{name: "WSOverReadLimit", init: true, frames: []wsFrame{subscribe("1", "{ viewer { id } } #"+strings.Repeat("x", 70000))}, close: 1009},
		{name: "WSBadKey", frames: []wsFrame{text(`{"type":"connection_init","payload":{"authorization":"Bearer rdev_nope"}}`)}, close: 4403},
		{name: "WSForeignOrigin", header: http.Header{"Origin": {"https://evil.example"}}, status: http.StatusForbidden},
		{name: "WSSilentClient", init: true, close: 1001}, // reads nothing, so never answers a ping
		{name: "WSTooManySubscriptions", init: true, frames: []wsFrame{subscribe("1", watch), subscribe("2", watch), subscribe("3", watch), subscribe("4", watch)},
			check: expectWSError("4", "INVALID_INPUT", "the limit is 3")},
		{name: "WSDepthOverLimit", init: true, frames: []wsFrame{subscribe("1", `subscription { commandEvents(projectId: "demo") { project { commands(first: 1) { nodes { project { commands(first: 1) { nodes { project { commands(first: 1) { nodes { project { commands(first: 1) { nodes { id } } } } } } } } } } } } } }`)},
			check: expectWSError("1", "INVALID_INPUT", "exceeds the limit of 12")},
		{name: "WSUnknownField", init: true, frames: []wsFrame{subscribe("1", `subscription { nothing }`)},
			check: expectWSError("1", "GRAPHQL_VALIDATION_FAILED", "Cannot query field")},
	}
}

// expectWSError reads messages until an "error" for id arrives, and checks
// its first error's code and message.
func expectWSError(id, code, msg string) func(*gorilla.Conn) error {
	return func(c *gorilla.Conn) error {
		var seen []string
		for {
			var m struct {
				Type, ID string
				Payload  json.RawMessage
			}
			if err := c.ReadJSON(&m); err != nil {
				return fmt.Errorf("%w, after %q", err, seen)
			}
			seen = append(seen, fmt.Sprintf("%s %s %.200s", m.Type, m.ID, m.Payload))
			if m.Type != "error" || m.ID != id {
				continue
			}
			var errs []struct {
				Message    string
				Extensions map[string]any
			}
			if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) == 0 {
				return fmt.Errorf("error payload %s", m.Payload)
			}
			if errs[0].Extensions["code"] != code || !strings.Contains(errs[0].Message, msg) {
				return fmt.Errorf("error %s, want code %s and %q", m.Payload, code, msg)
			}
			return nil
		}
	}
}

func (s *server) wsAbuse(t *testing.T, tt wsAbuse, token string) {
	proto := tt.subprotocol
	if proto == "" {
		proto = "graphql-transport-ws"
	}
	d := gorilla.Dialer{Subprotocols: []string{proto}, HandshakeTimeout: 5 * time.Second}
	c, res, err := d.DialContext(t.Context(), "ws"+strings.TrimPrefix(s.url, "http")+"/graphql", tt.header)
	if res != nil && res.Body != nil {
		defer func() { _ = res.Body.Close() }()
	}
	if tt.status != 0 {
		if err == nil || res == nil || res.StatusCode != tt.status {
			t.Fatalf("upgrade: %v %v, want HTTP %d", err, res, tt.status)
		}
		return
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if tt.init {
		init := map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + token}}
		if err := c.WriteJSON(init); err != nil {
			t.Fatal(err)
		}
		var ack struct{ Type string }
		if err := c.ReadJSON(&ack); err != nil || ack.Type != "connection_ack" {
			t.Fatalf("handshake: %v %v", ack, err)
		}
	}
	for _, f := range tt.frames {
		typ := gorilla.TextMessage
		if f.binary {
			typ = gorilla.BinaryMessage
		}
		if err := c.WriteMessage(typ, []byte(f.data)); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if tt.check != nil {
		if err := tt.check(c); err != nil {
			t.Fatal(err)
		}
		return
	}
	if tt.name == "WSSilentClient" {
		time.Sleep(3 * time.Second) // two keep-alive intervals and a margin
	}
	for {
		_, _, err := c.ReadMessage()
		if err == nil {
			continue
		}
		var ce *gorilla.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended with %v, want close %d", err, tt.close)
		}
		if ce.Code != tt.close {
			t.Fatalf("close %d %q, want %d", ce.Code, ce.Text, tt.close)
		}
		return
	}
}

// TestE2E_Abuse sends the real binary hostile requests over HTTP and
// WebSocket. Each must get its own clear answer (an HTTP status, an
// extensions.code, a close code), and after each the server still answers
// /healthz and a normal query.
func TestE2E_Abuse(t *testing.T) {
	in := newInstance(t, abuseEnv...)
	s := in.serve()
	token, _ := in.createKey("--name", "abuse", "--admin")
	stillServes := func(t *testing.T) {
		t.Helper()
		if code, body := s.get("/healthz"); code != http.StatusOK {
			t.Fatalf("/healthz after the case: %d %s", code, body)
		}
		if r := s.query(token, `{ viewer { name } projects { nodes { id } } }`, nil); len(r.Errors) > 0 || fmt.Sprint(r.Data["viewer"]) != "map[name:abuse]" {
			t.Fatalf("a normal query after the case: %+v", r)
		}
	}
	httpCases, wsCases := httpAbuses(token), wsAbuses()
	if n := len(httpCases) + len(wsCases); n < 50 {
		t.Fatalf("only %d cases", n)
	}
	for _, tt := range httpCases {
		t.Run(tt.name, func(t *testing.T) {
			s.abuse(t, tt, token)
			stillServes(t)
		})
	}
	for _, tt := range wsCases {
		t.Run(tt.name, func(t *testing.T) {
			s.wsAbuse(t, tt, token)
			stillServes(t)
		})
	}
	if strings.Contains(s.output(), "panic") {
		t.Errorf("the server logged a panic: %s", s.output())
	}
}

// TestE2E_PersistedQueries runs Apollo Client's persisted-query link against
// the binary: automatic persisted queries first, then a server started with a
// trusted-documents manifest (as Apollo Client sends the operations) in
// trusted-only mode, over HTTP, WebSocket and SSE.
func TestE2E_PersistedQueries(t *testing.T) {
	nodeClients(t)
	t.Run("Automatic", func(t *testing.T) {
		in := newInstance(t)
		s := in.serve()
		token, _ := in.createKey("--name", "persisted", "--admin")
		out := runNode(t, s, token, "persisted.mjs", "RDEV_MODE=apq")
		if n := strings.Count(out, "ok apq:"); n != 6 {
			t.Fatalf("%d apq checks passed, want 6", n)
		}
	})
	t.Run("Trusted", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "manifest.json")
		node, dir := nodeClients(t)
		gen := exec.CommandContext(t.Context(), node, "persisted.mjs")
		gen.Dir, gen.Env = dir, append(os.Environ(), "RDEV_MODE=manifest", "RDEV_MANIFEST="+path)
		if out, err := gen.CombinedOutput(); err != nil {
			t.Fatalf("writing the manifest: %v\n%s", err, out)
		}
		in := newInstance(t, "RDEV_TRUSTED_DOCUMENTS="+path, "RDEV_TRUSTED_DOCUMENTS_ONLY=true")
		s := in.serve()
		if !s.waitOutput("trusted documents loaded") || !strings.Contains(s.output(), "operations=2") {
			t.Errorf("start-up does not say the manifest was loaded: %s", s.output())
		}
		token, _ := in.createKey("--name", "persisted", "--admin")
		out := runNode(t, s, token, "persisted.mjs", "RDEV_MODE=trusted")
		if n := strings.Count(out, "ok trusted:"); n != 8 {
			t.Fatalf("%d trusted checks passed, want 8", n)
		}
		// curl, too, gets the refusal with its code.
		if r := s.query(token, `{ viewer { id } }`, nil); r.code() != "PERSISTED_QUERY_NOT_TRUSTED" {
			t.Errorf("an untrusted POST: %+v", r)
		}
	})
}

// TestE2E_BadManifest checks that a trusted-documents manifest that cannot
// be used stops rdev serve at start-up, saying why.
func TestE2E_BadManifest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const body = `{ viewer { id } }`
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"Missing", []string{"RDEV_TRUSTED_DOCUMENTS=" + filepath.Join(dir, "nope.json")}, "no such file"},
		{"NotJSON", []string{"RDEV_TRUSTED_DOCUMENTS=" + write("bad.json", "{")}, "not a persisted-query manifest"},
		{"WrongFormat", []string{"RDEV_TRUSTED_DOCUMENTS=" + write("relay.json", `{"format":"relay","version":1,"operations":[]}`)}, `format "relay"`},
		{"IDNotTheHash", []string{"RDEV_TRUSTED_DOCUMENTS=" + write("hash.json", `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"`+sha(body+" ")+`","name":"V","type":"query","body":"`+body+`"}]}`)}, "is not the SHA-256 of its body"},
		{"OnlyWithoutManifest", []string{"RDEV_TRUSTED_DOCUMENTS_ONLY=true"}, "needs a manifest"},
		{"NegativeLimit", []string{"RDEV_MAX_DEPTH=-1"}, "RDEV_MAX_DEPTH"},
		{"ZeroReadLimit", []string{"RDEV_WS_READ_LIMIT=0"}, "RDEV_WS_READ_LIMIT"},
		{"BadSuggestions", []string{"RDEV_FIELD_SUGGESTIONS=maybe"}, "RDEV_FIELD_SUGGESTIONS"},
	}
	_, help, _ := newInstance(t).cli("serve", "--help")
	for _, env := range []string{"RDEV_MAX_DEPTH", "RDEV_MAX_ALIASES", "RDEV_MAX_COMPLEXITY", "RDEV_OPERATION_TIMEOUT",
		"RDEV_MAX_SUBSCRIPTIONS_PER_CONNECTION", "RDEV_WS_READ_LIMIT", "RDEV_FIELD_SUGGESTIONS", "RDEV_APQ_CACHE_SIZE",
		"RDEV_TRUSTED_DOCUMENTS", "RDEV_TRUSTED_DOCUMENTS_ONLY"} {
		if !strings.Contains(help, "env "+env+")") {
			t.Errorf("serve --help does not list %s", env)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := newInstance(t, tt.env...)
			_, errs, code := in.cli("serve", "--host", "127.0.0.1", "--port", "0")
			if code != 1 || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit 1 saying %q", code, errs, tt.want)
			}
		})
	}
}
