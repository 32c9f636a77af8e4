package websocket

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	gorilla "github.com/gorilla/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/rdev-hq/rdev/domain"
)

// session is one connection's protocol: the init handshake, then a read loop
// that starts and stops operations, each of which writes its results from its
// own goroutine.
type session struct {
	t       Transport
	c       *conn
	p       *protocol
	exec    graphql.GraphExecutor
	headers http.Header
	ctx     context.Context // the connection's, as InitFunc returned it
	release func()          // frees the place Admit gave; nil if none
	wg      sync.WaitGroup  // running operations
	closeMu sync.Mutex      // serializes close

	mu     sync.Mutex // guards the fields below
	ops    map[string]*operation
	acked  bool
	closed bool
	code   int // the close code the connection ended with
	// refused is why the connection's credential stopped authorizing it;
	// the connection closes once its operations have ended.
	refused error
}

// operation is one running subscribe (or start) of the client.
type operation struct {
	cancel   context.CancelFunc
	stopped  bool // by the client
	replaced bool // by a new operation with its id (legacy protocol)
	failed   bool // ended with an error message
}

// serve runs the connection until it closes, and returns once every
// operation has ended.
func (s *session) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	s.ctx = ctx
	// The server shutting down ends the connection.
	stop := context.AfterFunc(ctx, func() { s.close(closeGoingAway, "server shutting down") })
	defer func() {
		stop()
		s.close(closeNormal, "")
		cancel()
		s.wg.Wait()
		if s.release != nil {
			s.release()
		}
		if s.t.CloseFunc != nil {
			s.t.CloseFunc(s.ctx, s.code)
		}
	}()
	s.c.SetReadLimit(s.t.ReadLimit)
	if !s.init() {
		return
	}
	stopWatching := context.AfterFunc(s.ctx, func() {
		if err := context.Cause(s.ctx); isDomainError(err) {
			s.credentialEnded(err)
		}
	})
	defer stopWatching()
	if s.t.KeepAlive > 0 {
		s.c.ws.SetPongHandler(func(string) error { return s.extendDeadline() })
		_ = s.extendDeadline()
		go s.keepAlive(ctx)
	}
	for {
		m, err := s.read()
		if err != nil {
			s.readFailed(err)
			return
		}
		if s.t.KeepAlive > 0 {
			_ = s.extendDeadline()
		}
		if !s.handle(m) {
			return
		}
	}
}

// init waits for connection_init and acknowledges it. It returns false if the
// connection ended instead.
func (s *session) init() bool {
	_ = s.c.SetReadDeadline(time.Now().Add(s.t.InitTimeout))
	for {
		m, err := s.read()
		switch {
		case isTimeout(err):
			s.close(closeInitTimeout, "Connection initialisation timeout")
			return false
		case err != nil:
			s.readFailed(err)
			return false
		}
		switch {
		case m.Type == "connection_init":
			return s.acknowledge(m.Payload)
		case m.Type == "ping" && !s.p.legacy:
			s.write(encodeMessage(nil, "pong", "", m.Payload))
		case m.Type == "pong" && !s.p.legacy:
		case m.Type == s.p.subscribe && !s.p.legacy:
			s.close(closeUnauthorized, "Unauthorized")
			return false
		case m.Type == "connection_terminate" && s.p.legacy:
			s.close(closeNormal, "terminated")
			return false
		default:
			s.refuse(closeBadRequest, fmt.Sprintf("Invalid message received: %q before connection_init", clip(m.Type, 32)))
			return false
		}
	}
}

// acknowledge runs InitFunc on the init payload and sends the ack.
func (s *session) acknowledge(raw json.RawMessage) bool {
	var payload transport.InitPayload
	if len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &payload); err != nil {
			s.refuse(closeBadRequest, "Invalid message received: connection_init payload must be an object")
			return false
		}
	}
	if s.t.InitFunc != nil {
		ctx, err := s.t.InitFunc(s.ctx, payload)
		if err != nil {
			s.refuseCredential(err)
			return false
		}
		s.ctx = ctx
	}
	if s.t.Admit != nil {
		release, err := s.t.Admit(s.ctx)
		if err != nil {
			s.refuseCredential(err)
			return false
		}
		s.release = release
	}
	_ = s.c.SetReadDeadline(time.Time{})
	s.mu.Lock()
	s.acked = true
	s.mu.Unlock()
	s.write(encodeMessage(nil, "connection_ack", "", nil))
	if s.p.legacy && s.t.KeepAlive > 0 {
		s.write(encodeMessage(nil, s.p.keepAlive, "", nil))
	}
	return true
}

// handle acts on one message after the handshake. It returns false once the
// connection is closing.
func (s *session) handle(m inMessage) bool {
	switch {
	case m.Type == s.p.subscribe:
		return s.subscribe(m)
	case m.Type == s.p.stop:
		s.mu.Lock()
		if op := s.ops[m.ID]; op != nil {
			op.stopped = true
			op.cancel()
		}
		s.mu.Unlock()
	case m.Type == "ping" && !s.p.legacy:
		s.write(encodeMessage(nil, "pong", "", m.Payload))
	case m.Type == "pong" && !s.p.legacy:
	case m.Type == "connection_init":
		s.close(closeTooManyInits, "Too many initialisation requests")
		return false
	case m.Type == "connection_terminate" && s.p.legacy:
		s.close(closeNormal, "terminated")
		return false
	default:
		s.close(closeBadRequest, fmt.Sprintf("Invalid message received: unknown type %q", clip(m.Type, 32)))
		return false
	}
	return true
}

// subscribe starts an operation: it parses and validates the request and
// runs it on its own goroutine. A request that fails validation gets an
// error message; a malformed message closes the connection.
func (s *session) subscribe(m inMessage) bool {
	start := graphql.Now()
	if m.ID == "" {
		s.close(closeBadRequest, "Invalid message received: "+m.Type+" without an id")
		return false
	}
	var params graphql.RawParams
	dec := json.NewDecoder(bytes.NewReader(m.Payload))
	dec.UseNumber()
	if err := dec.Decode(&params); err != nil || params.Query == "" && params.Extensions == nil {
		s.close(closeBadRequest, "Invalid message received: "+m.Type+" payload must be an object with a query")
		return false
	}
	s.mu.Lock()
	if prev := s.ops[m.ID]; prev != nil {
		if !s.p.legacy {
			s.mu.Unlock()
			s.close(closeDuplicateID, "Subscriber for "+clip(m.ID, 64)+" already exists")
			return false
		}
		// subscriptions-transport-ws replaces an operation with the same id.
		prev.replaced = true
		prev.cancel()
	}
	s.mu.Unlock()

	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	params.Headers = s.headers
	ctx := graphql.StartOperationTrace(s.ctx)
	rc, errs := s.exec.CreateOperationContext(ctx, &params)
	if errs != nil {
		// The kind is read before the error presenter, which may change the
		// errors' codes, sees them.
		invalid := errcode.GetErrorKind(errs) == errcode.KindProtocol
		resp := s.exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs)
		if invalid {
			s.sendErrors(m.ID, resp.Errors)
			if s.p.legacy {
				s.write(encodeMessage(nil, "complete", m.ID, nil))
			}
		} else {
			s.sendResult(m.ID, resp)
			s.write(encodeMessage(nil, "complete", m.ID, nil))
		}
		return true
	}
	ctx, cancel := context.WithCancel(graphql.WithOperationContext(ctx, rc))
	op := &operation{cancel: cancel}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return false
	}
	if limit := s.t.MaxOperations; limit > 0 && s.running() >= limit {
		s.mu.Unlock()
		cancel()
		err := &gqlerror.Error{
			Message:    fmt.Sprintf("too many operations on one connection: the limit is %d (RDEV_MAX_SUBSCRIPTIONS_PER_CONNECTION)", limit),
			Extensions: map[string]any{"code": domain.EINVALID, "limit": "subscriptions"},
		}
		s.sendErrors(m.ID, s.exec.DispatchError(graphql.WithOperationContext(ctx, rc), gqlerror.List{err}).Errors)
		if s.p.legacy {
			s.write(encodeMessage(nil, "complete", m.ID, nil))
		}
		return true
	}
	s.ops[m.ID] = op
	s.wg.Add(1)
	s.mu.Unlock()
	go s.run(ctx, m.ID, op, rc)
	return true
}

// running counts the operations that run and were not told to stop. The
// caller holds s.mu.
func (s *session) running() int {
	n := 0
	for _, op := range s.ops {
		if !op.stopped && !op.replaced {
			n++
		}
	}
	return n
}

// run executes one operation and sends its results, then "complete" unless
// the client stopped it, it failed (a subscription's error without data
// goes out as an "error" message, which ends it), or the connection is
// closing. The legacy protocol always ends with "complete".
func (s *session) run(ctx context.Context, id string, op *operation, rc *graphql.OperationContext) {
	defer s.wg.Done()
	defer op.cancel()
	defer func() {
		if r := recover(); r != nil {
			err := rc.Recover(ctx, r)
			var gerr *gqlerror.Error
			if !errors.As(err, &gerr) {
				gerr = &gqlerror.Error{Message: "internal error"}
			}
			s.sendErrors(id, gqlerror.List{gerr})
		}
		s.mu.Lock()
		if s.ops[id] == op {
			delete(s.ops, id)
		}
		complete := !s.closed && !op.replaced && (!op.stopped && !op.failed || s.p.legacy)
		refused := s.refused
		last := len(s.ops) == 0
		s.mu.Unlock()
		if complete {
			s.write(encodeMessage(nil, "complete", id, nil))
		}
		if refused != nil && last {
			s.refuseCredential(refused)
		}
	}()
	responses, ctx := s.dispatch(ctx, rc)
	subscription := rc.Operation != nil && rc.Operation.Operation == ast.Subscription
	for {
		r := responses(ctx)
		if r == nil {
			return
		}
		if subscription && failed(r) {
			// The subscription failed, at its start or later (its stream's
			// storage went down): an error message ends it, so the client
			// can tell that from a subscription that is over and retry.
			s.mu.Lock()
			op.failed = true
			s.mu.Unlock()
			s.sendErrors(id, r.Errors)
			return
		}
		if !s.sendResult(id, r) {
			return
		}
	}
}

// failed reports whether r is an error without data: for a subscription,
// its end.
func failed(r *graphql.Response) bool {
	return len(r.Errors) > 0 && (len(r.Data) == 0 || string(r.Data) == "null")
}

// dispatch starts the operation on a goroutine of its own, which ends once
// the operation has started: resolving a subscription's field (reading the
// database, say) needs a deep stack for a moment, and run's goroutine, which
// then waits on the subscription for as long as it lasts, keeps the stack it
// grew. A panic there is raised again here.
func (s *session) dispatch(ctx context.Context, rc *graphql.OperationContext) (graphql.ResponseHandler, context.Context) {
	var (
		responses graphql.ResponseHandler
		opCtx     context.Context
		panicked  any
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { panicked = recover() }()
		responses, opCtx = s.exec.DispatchOperation(ctx, rc)
	}()
	<-done
	if panicked != nil {
		panic(panicked)
	}
	return responses, opCtx
}

// sendResult writes one result. It returns false when the write failed.
func (s *session) sendResult(id string, r *graphql.Response) bool {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf, err := encodeResult((*bp)[:0], s.p.next, id, r)
	*bp = buf
	if err != nil {
		s.sendErrors(id, gqlerror.List{{Message: "internal error"}})
		return false
	}
	return s.write(buf)
}

// sendErrors writes an operation's "error" message.
func (s *session) sendErrors(id string, errs gqlerror.List) {
	b, err := json.Marshal(errs)
	if err != nil {
		b = []byte(`[{"message":"internal error"}]`)
	}
	s.write(encodeMessage(nil, "error", id, b))
}

// write sends one message; it returns false if the connection failed (it is
// closed then, and the read loop ends).
func (s *session) write(data []byte) bool {
	err := s.c.writeMessage(data)
	if err != nil {
		s.reportError(err)
	}
	return err == nil
}

// refuse ends a connection that failed its handshake: the legacy protocol
// first says why in a connection_error message.
func (s *session) refuse(code int, reason string) {
	if s.p.legacy {
		b, _ := json.Marshal(map[string]string{"message": reason})
		s.write(encodeMessage(nil, "connection_error", "", b))
	}
	s.close(code, reason)
}

// credentialEnded ends a connection whose context ended because its key
// stopped authorizing it (err, a domain error, says why): each operation
// ends with err (the operations' own middleware answers it), and once none
// runs, the connection closes as refuseCredential does.
func (s *session) credentialEnded(err error) {
	s.mu.Lock()
	s.refused = err
	idle := len(s.ops) == 0
	s.mu.Unlock()
	if idle {
		s.refuseCredential(err)
	}
}

// refuseCredential ends a connection whose connection_init InitFunc or
// Admit refused it, or whose key stopped authorizing it later: with 1013 if
// something it needs is unavailable (domain.EUNAVAILABLE), which clients
// retry, with 4429 if the caller is over a limit (domain.ERATELIMITED), and
// with 4403 otherwise. A domain error is told by its message, and in the
// legacy protocol's connection_error also by its extensions.code.
func (s *session) refuseCredential(err error) {
	payload := map[string]any{"message": err.Error()}
	if _, ok := errors.AsType[*domain.Error](err); ok {
		payload["message"], payload["extensions"] = domain.ErrorMessage(err), map[string]any{"code": domain.ErrorCode(err)}
	}
	code, reason := closeForbidden, "Forbidden: "
	switch domain.ErrorCode(err) {
	case domain.EUNAVAILABLE:
		code, reason = closeTryAgainLater, "Try Again Later: "
	case domain.ERATELIMITED:
		code, reason = closeTooManyRequests, "Too Many Requests: "
	}
	if s.p.legacy {
		b, _ := json.Marshal(payload)
		s.write(encodeMessage(nil, "connection_error", "", b))
	}
	// A close frame's reason is at most 123 bytes of UTF-8.
	s.close(code, strings.ToValidUTF8(clip(reason+payload["message"].(string), 123), ""))
}

// keepAlive pings the client every interval until ctx ends.
func (s *session) keepAlive(ctx context.Context) {
	t := time.NewTicker(s.t.KeepAlive)
	defer t.Stop()
	msg := encodeMessage(nil, s.p.keepAlive, "", nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.c.ping(); err != nil {
				return
			}
			if !s.write(msg) {
				return
			}
		}
	}
}

// extendDeadline gives the client two keep-alive intervals to show it is
// there.
func (s *session) extendDeadline() error {
	return s.c.SetReadDeadline(time.Now().Add(2 * s.t.KeepAlive))
}

// read returns the next message from the client. A binary frame, or a
// message that is not a JSON object with a type, closes the connection with
// 4400.
func (s *session) read() (inMessage, error) {
	typ, r, err := s.c.NextReader()
	if err != nil {
		return inMessage{}, err
	}
	if typ != gorilla.TextMessage {
		// Both protocols send JSON text; a binary frame is not one of them.
		s.refuse(closeBadRequest, "Invalid message received: binary frames are not supported")
		return inMessage{}, net.ErrClosed
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return inMessage{}, err
	}
	var m inMessage
	if err := json.Unmarshal(data, &m); err != nil || m.Type == "" {
		s.refuse(closeBadRequest, "Invalid message received: not a JSON object with a type")
		return inMessage{}, net.ErrClosed
	}
	return m, nil
}

// readFailed ends the connection after a failed read: the peer closed it,
// vanished, fell silent, or we closed it.
func (s *session) readFailed(err error) {
	var ce *gorilla.CloseError
	switch {
	case errors.As(err, &ce):
		// gorilla has answered the peer's close frame with its code.
		if !errors.Is(err, transport.ErrWebsocketClosed) {
			s.reportError(err)
		}
		s.markClosed(ce.Code)
	case errors.Is(err, net.ErrClosed):
	case isTimeout(err):
		s.reportError(err)
		s.close(closeGoingAway, "keep-alive timeout")
	default:
		s.reportError(err)
		s.markClosed(closeAbnormalClosed)
	}
}

// close sends a close frame with code and reason (unless the connection was
// closing already), ends every operation and closes the connection. Calls
// are serialized, so that one closing the socket never cuts off another's
// close frame.
func (s *session) close(code int, reason string) {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.markClosed(code) {
		_ = s.c.WriteClose(code, reason)
	}
	_ = s.c.Close()
}

// markClosed records that the connection ends with code and stops every
// operation. It returns false if the connection was closing already.
func (s *session) markClosed(code int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.closed, s.code = true, code
	for _, op := range s.ops {
		op.cancel()
	}
	return true
}

func isDomainError(err error) bool {
	_, ok := errors.AsType[*domain.Error](err)
	return ok
}

func (s *session) reportError(err error) {
	if s.t.ErrorFunc != nil {
		s.t.ErrorFunc(s.ctx, err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
