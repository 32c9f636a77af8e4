package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

// logConfig selects the level and format of rdev's structured logs.
type logConfig struct {
	LogLevel  string
	LogFormat string
}

func (c *logConfig) register(f *envFlags) {
	f.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	f.String(&c.LogFormat, "log-format", "RDEV_LOG_FORMAT", "json", "json or text")
}

// logger returns the logger; a record logged with a context that carries a
// span has its trace_id and span_id.
func (c *logConfig) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(c.LogFormat) {
	case "json":
		return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, opts))), nil
	case "text":
		return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, opts))), nil
	}
	return nil, fmt.Errorf("RDEV_LOG_FORMAT: %q is not json or text", c.LogFormat)
}
