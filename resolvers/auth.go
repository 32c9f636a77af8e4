package resolvers

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/rdev-hq/rdev/domain"
)

// authenticator resolves the caller of every request: its address (through
// trusted proxies only), its request ID, and its API key if it sent one.
type authenticator struct {
	keys *domain.APIKeyService
	// limits throttles failed authentications per client address; nil
	// throttles nothing.
	limits  *domain.RateLimitService
	trusted []netip.Prefix
	// log records refused credentials at debug level, by key ID only.
	log *slog.Logger
}

// callerOf names the caller of r: its address, user agent and request ID,
// and its API key if it sent one. A request without credentials goes on
// anonymously (fields that need a key refuse it); bad credentials are an
// error, logged, and the request is refused before any resolver runs. The
// caller is returned either way, for its request ID.
func (a *authenticator) callerOf(r *http.Request) (*domain.Caller, error) {
	caller := &domain.Caller{
		Addr:      clientAddr(r, a.trusted),
		UserAgent: clip(r.UserAgent(), 256),
		RequestID: requestIDFrom(r),
	}
	if h := r.Header.Get("Authorization"); h != "" {
		if err := a.authenticate(r.Context(), caller, h); err != nil {
			a.refused(r.Context(), h, caller, err)
			return caller, err
		}
	}
	return caller, nil
}

// refused logs a refused credential: the key ID it names, if any, never the
// secret. A credential that could not be checked because storage is down
// is an outage, logged as a warning with its cause.
func (a *authenticator) refused(ctx context.Context, credential string, c *domain.Caller, err error) {
	if a.log != nil && domain.ErrorCode(err) == domain.EUNAVAILABLE {
		a.log.WarnContext(ctx, "unavailable", "err", err, "request_id", c.RequestID)
		return
	}
	if a.log == nil || !a.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	_, token, _ := strings.Cut(strings.TrimSpace(credential), " ")
	id, _, perr := domain.ParseToken(strings.TrimSpace(token))
	if perr != nil {
		id = ""
	}
	a.log.DebugContext(ctx, "authentication refused", "key", id, "client_ip", c.Addr.String(),
		"request_id", c.RequestID, "code", domain.ErrorCode(err))
}

// authenticate checks a credential for c: "Bearer <token>", or a bare token
// where a client cannot send a scheme (WebSocket connection_init payloads),
// and on success sets c's key. An address or key ID that has failed too
// often is refused (ERATELIMITED) unchecked, so guessing keys is slow.
func (a *authenticator) authenticate(ctx context.Context, c *domain.Caller, credential string) error {
	keyID := presentedKeyID(credential)
	if err := a.limits.CheckAuthFailures(ctx, c.Addr, keyID); err != nil {
		return err
	}
	err := a.check(ctx, c, credential)
	if domain.ErrorCode(err) == domain.EUNAUTHENTICATED {
		if ferr := a.limits.AuthFailed(ctx, c.Addr, keyID); ferr != nil {
			return ferr
		}
	}
	return err
}

// presentedKeyID returns the key ID a credential names, or "" if it names
// none (it is not a well-formed token).
func presentedKeyID(credential string) string {
	token := strings.TrimSpace(credential)
	if _, rest, ok := strings.Cut(token, " "); ok {
		token = strings.TrimSpace(rest)
	}
	id, _, err := domain.ParseToken(token)
	if err != nil {
		return ""
	}
	return id
}

func (a *authenticator) check(ctx context.Context, c *domain.Caller, credential string) error {
	token := strings.TrimSpace(credential)
	if scheme, rest, ok := strings.Cut(token, " "); ok {
		if !strings.EqualFold(scheme, "Bearer") {
			return domain.Errorf(domain.EUNAUTHENTICATED, "unsupported authorization scheme %q: use Bearer <API key>", clip(scheme, 32))
		}
		token = strings.TrimSpace(rest)
	}
	return a.keys.AuthenticateCaller(ctx, c, token)
}

// WebsocketAuth authenticates a WebSocket connection from its
// connection_init payload and returns the context for its operations.
type WebsocketAuth = func(ctx context.Context, payload transport.InitPayload) (context.Context, error)

// websocketInit authenticates a WebSocket connection from its
// connection_init payload ("authorization" or "Authorization"). Without one
// the connection keeps the caller of its upgrade request. A refusal is a
// domain error, its message clipped for a close frame: the transport closes
// the connection with 4403 and the message, or, if the key could not be
// checked because storage is down (EUNAVAILABLE), with 1013 so that the
// client tries again. The connection's context is guarded: it ends, with
// the reason as its cause, once the key stops authorizing it (revoked,
// expired, rotated away, narrowed), and the transport then ends the
// connection's operations and closes it.
func (a *authenticator) websocketInit(ctx context.Context, payload transport.InitPayload) (context.Context, error) {
	credential := payload.Authorization()
	caller := domain.CallerFromContext(ctx)
	if credential != "" && caller != nil {
		c := *caller
		if err := a.authenticate(ctx, &c, credential); err != nil {
			a.refused(ctx, credential, caller, err)
			return ctx, domain.Errorf(domain.ErrorCode(err), "%s", clip(domain.ErrorMessage(err), 100))
		}
		ctx = domain.NewContextWithCaller(ctx, &c)
	}
	return a.keys.Guard(ctx), nil
}

// clientAddr returns the client's address. X-Forwarded-For is believed only
// when the connection comes from a trusted proxy, and then only up to the
// first hop that is not itself a trusted proxy.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	addr = addr.Unmap().WithZone("")
	if !isTrusted(addr, trusted) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		addr = hop.Unmap().WithZone("")
		if !isTrusted(addr, trusted) {
			break
		}
	}
	return addr
}

func isTrusted(addr netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// headerRequestID is X-Request-ID in canonical form, which net/http reads
// and writes without converting it on every request.
var headerRequestID = http.CanonicalHeaderKey("X-Request-ID")

// requestIDFrom keeps a client's X-Request-ID if it is short and plain, and
// makes a new one otherwise.
func requestIDFrom(r *http.Request) string {
	id := r.Header.Get(headerRequestID)
	if id == "" || len(id) > 64 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != "" {
		return domain.NewID(time.Now())
	}
	return id
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
