// Package telemetry sets up vigil's logging, Prometheus metrics and the
// HTTP endpoints that serve them. Pure packages never import it; drivers
// turn actions and events into log records and metrics.
package telemetry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/sirupsen/logrus"
)

// NewLogger returns a structured logger writing to w in "text" or "json" at
// the given level (debug, info, warn, error).
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "", "info":
		lv = slog.LevelInfo
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "", "text":
		return slog.New(TraceHandler{slog.NewTextHandler(w, opts)}), nil
	case "json":
		return slog.New(TraceHandler{slog.NewJSONHandler(w, opts)}), nil
	}
	return nil, fmt.Errorf("log format %q is not text or json", format)
}

// RouteLogrus sends what libraries log through logrus's standard logger
// to log, as structured records with library=logrus, instead of to
// stderr in logrus's own format. moby/ipvs does, when modprobe ip_vs fails
// or the kernel has no IPVS (vigil opens it only to set connection
// timeouts).
func RouteLogrus(log *slog.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(logrusHook{log})
}

type logrusHook struct{ log *slog.Logger }

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	lv := slog.LevelInfo
	switch e.Level {
	case logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel:
		lv = slog.LevelError
	case logrus.WarnLevel:
		lv = slog.LevelWarn
	case logrus.DebugLevel, logrus.TraceLevel:
		lv = slog.LevelDebug
	}
	args := make([]any, 0, 2+2*len(e.Data))
	args = append(args, "library", "logrus")
	for k, v := range e.Data {
		args = append(args, k, v)
	}
	h.log.Log(context.Background(), lv, e.Message, args...)
	return nil
}
