package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"golang.org/x/term"

	"github.com/rdev-hq/rdev/infra/telemetry"
)

// logConfig selects the level and format of rdev's structured logs.
type logConfig struct {
	LogLevel  string
	LogFormat string
}

func (c *logConfig) register(f *envFlags) {
	f.String(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	f.String(&c.LogFormat, "log-format", "RDEV_LOG_FORMAT", "auto", "json, text, or auto: text when stderr is a terminal, json otherwise")
}

// logger returns the logger; a record logged with a context that carries a
// span has its trace_id and span_id.
func (c *logConfig) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := strings.ToLower(c.LogFormat)
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "text" // a person reads it, beside the banner
		}
	}
	switch format {
	case "json":
		return slog.New(telemetry.LogHandler(slog.NewJSONHandler(w, opts))), nil
	case "text":
		return slog.New(telemetry.LogHandler(slog.NewTextHandler(w, opts))), nil
	}
	return nil, fmt.Errorf("RDEV_LOG_FORMAT: %q is not json, text or auto", c.LogFormat)
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd())) //nolint:gosec // a file descriptor fits in an int
}
