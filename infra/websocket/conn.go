package websocket

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	gorilla "github.com/gorilla/websocket"
)

// conn adapts a gorilla connection to transport.WebsocketConn.
//
// gorilla allows one concurrent reader, one concurrent writer, and Close and
// WriteControl from anywhere. The transport reads from one goroutine but
// writes from several (each subscription, keep-alives, the closer), so data
// writes are serialized by writeMu. WriteClose deliberately does not take
// writeMu: it sends a control frame, which gorilla interleaves safely, so a
// writer stuck on a slow peer cannot hold up closing.
type conn struct {
	ws           *gorilla.Conn
	writeTimeout time.Duration // <= 0: none

	writeMu sync.Mutex

	mu          sync.Mutex // guards the fields below
	closed      bool
	readLimit   int64
	stopAbandon func() bool
	abandonT    *time.Timer
}

var (
	_ transport.WebsocketConn          = (*conn)(nil)
	_ transport.WebsocketReadLimiter   = (*conn)(nil)
	_ transport.WebsocketReadDeadliner = (*conn)(nil)
)

// NextReader returns a reader for the next data message. It returns
// transport.ErrWebsocketClosed when the peer closed the connection normally
// (close codes 1000, 1001 and 1005; it wraps the *gorilla.CloseError too),
// and an error that wraps net.ErrClosed
// once the connection was closed on this side.
func (c *conn) NextReader() (int, io.Reader, error) {
	typ, r, err := c.ws.NextReader()
	switch {
	case gorilla.IsCloseError(err, gorilla.CloseNormalClosure, gorilla.CloseGoingAway, gorilla.CloseNoStatusReceived):
		return typ, nil, fmt.Errorf("%w: %w", transport.ErrWebsocketClosed, err)
	case err != nil && c.isClosed() && !errors.Is(err, net.ErrClosed):
		return typ, nil, fmt.Errorf("%w: %w", net.ErrClosed, err)
	case err != nil:
		return typ, nil, err
	}
	c.mu.Lock()
	limit := c.readLimit
	c.mu.Unlock()
	if limit > 0 {
		// gorilla counts the limit in bytes on the wire; with compression a
		// small frame can inflate without bound, so count what is read.
		r = &limitedReader{c: c, r: r, n: limit}
	}
	return typ, r, nil
}

// WriteJSON writes v as one text message; see writeMessage.
func (c *conn) WriteJSON(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeMessage(data)
}

// writeMessage writes data as one text message, within the write timeout. A
// failed write closes the connection: the peer is gone or too slow, and the
// reader must stop too.
//
// A message written once the connection is closing (a close frame was sent,
// or Close was called) is dropped without error: the closing handshake
// forbids it, and every message in flight at a normal close (such as a
// cancelled subscription's "complete") would otherwise count as a failure.
func (c *conn) writeMessage(data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if c.writeTimeout > 0 {
		if err := c.ws.SetWriteDeadline(time.Now().Add(c.writeTimeout)); err != nil {
			return err
		}
	}
	err := c.ws.WriteMessage(gorilla.TextMessage, data)
	if err == nil || errors.Is(err, gorilla.ErrCloseSent) || c.isClosed() {
		return nil
	}
	_ = c.Close()
	return err
}

// ping sends a ping frame; RFC 6455 peers answer it with a pong frame
// without their application's help.
func (c *conn) ping() error {
	err := c.ws.WriteControl(gorilla.PingMessage, nil, time.Now().Add(closeTimeout))
	if errors.Is(err, gorilla.ErrCloseSent) {
		return nil
	}
	return err
}

// WriteClose sends a close frame with closeCode and message. It waits at most
// closeTimeout, does not wait for the peer's reply, and sends nothing if a
// close frame was already sent (by the transport or by gorilla in reply to
// the peer's, or for an oversized message). A code that may not be sent on
// the wire (such as 1005 or 1006) sends a close frame without a status.
func (c *conn) WriteClose(closeCode int, message string) error {
	err := c.ws.WriteControl(gorilla.CloseMessage, closePayload(closeCode, message), time.Now().Add(closeTimeout))
	if errors.Is(err, gorilla.ErrCloseSent) {
		return nil
	}
	return err
}

// Close closes the connection without waiting. It is safe to call more than
// once and from any goroutine.
//
// Writes stop at once: a writer blocked on a slow peer fails, and the peer
// gets end-of-stream after what was already sent (such as the close frame
// from WriteClose). The socket itself is closed in the background once the
// peer has closed its side too, or after closeTimeout. Closing it while the
// peer's last frames (its reply to our close frame, or the rest of an
// oversized message) are still unread would make the kernel reset the
// connection, and the peer could lose our close frame and see an abnormal
// closure instead.
func (c *conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.stopAbandon != nil {
		c.stopAbandon()
	}
	if c.abandonT != nil {
		c.abandonT.Stop()
	}
	c.mu.Unlock()

	nc := c.ws.NetConn()
	hc, ok := nc.(interface{ CloseWrite() error })
	if !ok {
		return nc.Close()
	}
	_ = nc.SetWriteDeadline(time.Now())
	_ = hc.CloseWrite()
	_ = nc.SetReadDeadline(time.Now().Add(closeTimeout))
	go func() {
		// The transport's reader may still be reading too; whichever reads
		// the peer's last bytes, both stop at the deadline or at EOF.
		_, _ = io.Copy(io.Discard, nc)
		_ = nc.Close()
	}()
	return nil
}

// Subprotocol returns the negotiated subprotocol, "" if none.
func (c *conn) Subprotocol() string { return c.ws.Subprotocol() }

// SetReadLimit limits the size of a message read from the peer. A larger one
// makes the read fail and closes the connection with code 1009.
func (c *conn) SetReadLimit(limit int64) {
	c.mu.Lock()
	c.readLimit = limit
	c.mu.Unlock()
	c.ws.SetReadLimit(limit)
}

// SetReadDeadline sets the deadline for reads; a read still waiting then
// fails with a timeout, after which the connection is unusable. The zero
// time clears it.
func (c *conn) SetReadDeadline(t time.Time) error {
	return c.ws.SetReadDeadline(t)
}

func (c *conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// abandon runs when the accepting request's context ends: the handler has
// returned. The transport closes the connection itself right then; if it has
// not after abandonGrace (as on some of its error paths), close it here.
func (c *conn) abandon() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.abandonT = time.AfterFunc(abandonGrace, func() {
		_ = c.WriteClose(gorilla.CloseInternalServerErr, "server ended the connection")
		_ = c.Close()
	})
}

// limitedReader fails with gorilla.ErrReadLimit once more than n bytes have
// been read, closing the connection with code 1009 like gorilla does.
type limitedReader struct {
	c *conn
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if int64(len(p)) > l.n+1 {
		p = p[:l.n+1]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	if l.n < 0 {
		_ = l.c.WriteClose(gorilla.CloseMessageTooBig, "")
		return 0, gorilla.ErrReadLimit
	}
	return n, err
}

// closePayload formats a close frame's payload: the code, and the reason cut
// to fit a control frame on a UTF-8 boundary. Codes that must not appear on
// the wire give an empty payload, which the peer reads as 1005.
func closePayload(code int, reason string) []byte {
	if !sendableCloseCode(code) {
		return []byte{}
	}
	const maxReason = 125 - 2 // a control frame's payload, less the code
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	if len(reason) > maxReason {
		reason = reason[:maxReason]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return gorilla.FormatCloseMessage(code, reason)
}

// sendableCloseCode reports whether code may be sent in a close frame
// (RFC 6455 section 7.4): the defined codes other than the reserved 1004,
// 1005, 1006 and 1015, and the registered and private ranges.
func sendableCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}
