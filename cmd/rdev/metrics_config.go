package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

// metricsConfig is where Prometheus metrics are served.
type metricsConfig struct {
	Enabled bool
	Addr    string
}

func (c *metricsConfig) register(f *envFlags) {
	f.Bool(&c.Enabled, "metrics", "RDEV_METRICS", true, "serve Prometheus metrics at /metrics")
	f.String(&c.Addr, "metrics-addr", "RDEV_METRICS_ADDR", "", "host:port of a separate listener for /metrics (empty: the main listener serves it)")
}

// metricsServer serves /metrics on its own listener.
type metricsServer struct {
	http *http.Server
	ln   net.Listener
}

// listen opens the separate metrics listener, if one is configured, with
// the main listener's timeouts.
func (c *metricsConfig) listen(ctx context.Context, m *telemetry.Metrics, timeouts *httpTimeouts, log *slog.Logger) (*metricsServer, error) {
	if !c.Enabled || c.Addr == "" {
		return nil, nil
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("RDEV_METRICS_ADDR: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return &metricsServer{ln: ln, http: timeouts.server(mux, log)}, nil
}

// serve serves until Shutdown.
func (s *metricsServer) serve(log *slog.Logger) {
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("serving metrics", "err", err)
	}
}
