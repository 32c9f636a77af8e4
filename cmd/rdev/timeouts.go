package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// httpTimeouts bound how long a client may take to send a request and how
// long an idle keep-alive connection is kept. None of them bounds a
// response: /graphql lifts the read deadline once a request's body is in
// (resolvers' limitBody), so SSE streams and WebSockets run on past
// ReadTimeout.
type httpTimeouts struct {
	ReadHeader time.Duration
	Read       time.Duration
	Idle       time.Duration
}

func (c *httpTimeouts) register(f *envFlags) {
	f.Duration(&c.ReadHeader, "read-header-timeout", "RDEV_READ_HEADER_TIMEOUT", 10*time.Second, "how long a client may take to send a request's headers before its connection is closed")
	f.Duration(&c.Read, "read-timeout", "RDEV_READ_TIMEOUT", time.Minute, "how long a client may take to send a whole request, headers and body (the body of a /graphql request has RDEV_BODY_TIMEOUT); streams that follow a request are not cut")
	f.Duration(&c.Idle, "idle-timeout", "RDEV_IDLE_TIMEOUT", 2*time.Minute, "how long a keep-alive connection may wait for its next request before it is closed")
}

// validate refuses a timeout that is not positive: each must bound something.
func (c *httpTimeouts) validate() error {
	for _, v := range []struct {
		env string
		d   time.Duration
	}{{"RDEV_READ_HEADER_TIMEOUT", c.ReadHeader}, {"RDEV_READ_TIMEOUT", c.Read}, {"RDEV_IDLE_TIMEOUT", c.Idle}} {
		if v.d <= 0 {
			return fmt.Errorf("%s: %s must be positive", v.env, v.d)
		}
	}
	return nil
}

// server returns an HTTP server of h with these timeouts, logging its
// errors to log. WriteTimeout stays unset: it would end every SSE stream and
// WebSocket after it.
func (c *httpTimeouts) server(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeader,
		ReadTimeout:       c.Read,
		IdleTimeout:       c.Idle,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}
