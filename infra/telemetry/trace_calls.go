package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"path"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/rdev-hq/rdev/domain"
)

// Executor wraps x so that every run is a span "exec" below the command's,
// with the project, the program's name (never its arguments, which may hold
// secrets) and how the process ended.
func (t *Tracing) Executor(x domain.Executor) domain.Executor {
	return &tracedExecutor{next: x, t: t}
}

type tracedExecutor struct {
	next domain.Executor
	t    *Tracing
}

// Exec implements domain.Executor.
func (x *tracedExecutor) Exec(ctx context.Context, req domain.ExecRequest, stdout, stderr io.Writer) (domain.ExecResult, error) {
	ctx, span := x.t.tracer.Start(ctx, "exec", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if span.IsRecording() && req.Project != nil {
		span.SetAttributes(attribute.String("rdev.project.id", req.Project.ID))
		if len(req.Argv) > 0 {
			span.SetAttributes(attribute.String("process.executable.name", path.Base(req.Argv[0])))
		}
	}
	res, err := x.next.Exec(ctx, req, stdout, stderr)
	if !span.IsRecording() {
		return res, err
	}
	switch {
	case err != nil:
		span.SetAttributes(attribute.String("rdev.error.code", domain.ErrorCode(err)))
		span.SetStatus(codes.Error, domain.ErrorMessage(err))
	case res.Signal != "":
		span.SetAttributes(attribute.String("rdev.command.signal", res.Signal))
	default:
		span.SetAttributes(attribute.Int("process.exit.code", res.ExitCode))
	}
	return res, err
}

// WebhookSender wraps s so that every attempt is a client span in the trace
// of the change that queued the message, and the receiver is sent that
// span's traceparent (and tracestate).
func (t *Tracing) WebhookSender(s domain.WebhookSender) domain.WebhookSender {
	return &tracedSender{next: s, t: t}
}

type tracedSender struct {
	next domain.WebhookSender
	t    *Tracing
}

// Send implements domain.WebhookSender.
func (s *tracedSender) Send(ctx context.Context, a domain.WebhookAttempt) domain.WebhookResponse {
	ctx = withTraceContext(ctx, a.TraceParent, a.TraceState)
	ctx, span := s.t.tracer.Start(ctx, "webhook.deliver", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	tc := s.t.TraceContext(ctx)
	a.TraceParent, a.TraceState = tc.Parent, tc.State
	resp := s.next.Send(ctx, a)
	if !span.IsRecording() {
		return resp
	}
	span.SetAttributes(attribute.String("rdev.webhook.message_id", a.MessageID))
	if u, err := url.Parse(a.URL); err == nil {
		// The host only: a path or query may hold a receiver's token.
		span.SetAttributes(attribute.String("server.address", u.Hostname()))
	}
	if resp.StatusCode != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	}
	if resp.Outcome() != domain.WebhookDelivered {
		msg := "HTTP " + strconv.Itoa(resp.StatusCode)
		if resp.Err != nil {
			msg = resp.Err.Error()
		}
		span.SetStatus(codes.Error, msg)
	}
	return resp
}

// Transport wraps a Kubernetes client's transport so that every API call
// made inside a trace (an exec, a lookup for a request) is a client span,
// and the API server is sent its traceparent. Calls outside a trace, such
// as the informers' lists and watches, are not traced.
func (t *Tracing) Transport(rt http.RoundTripper) http.RoundTripper {
	return &tracedTransport{next: rt, t: t}
}

type tracedTransport struct {
	next http.RoundTripper
	t    *Tracing
}

// RoundTrip implements http.RoundTripper.
func (tt *tracedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !trace.SpanFromContext(req.Context()).IsRecording() {
		return tt.next.RoundTrip(req)
	}
	ctx, span := tt.t.tracer.Start(req.Context(), "kube "+req.Method, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	// The path names the resource; the query is left out, as an exec's
	// holds the command's arguments.
	span.SetAttributes(
		attribute.String("http.request.method", req.Method),
		attribute.String("server.address", req.URL.Hostname()),
		attribute.String("url.path", req.URL.Path),
	)
	req = req.Clone(ctx)
	tt.t.prop.Inject(ctx, propagation.HeaderCarrier(req.Header))
	res, err := tt.next.RoundTrip(req)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "request failed")
		return res, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", res.StatusCode))
	if res.StatusCode >= http.StatusBadRequest {
		span.SetStatus(codes.Error, http.StatusText(res.StatusCode))
	}
	return res, nil
}
