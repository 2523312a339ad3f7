package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/lbdproject/lbd/internal/config"
)

// Local is the subsystem for the daemon's own settings: the HTTP listener,
// the control socket and logging.
type Local struct {
	HTTP  *HTTPServer
	Level *slog.LevelVar
}

// Name implements Subsystem.
func (*Local) Name() string { return "local" }

// Check refuses changes to settings that only a restart can apply
// (config.RestartOnly), naming each and what it changed from and to.
func (l *Local) Check(_ context.Context, prev, next *config.Config) error {
	var errs []error
	for _, i := range config.RestartOnlyChanges(prev, next) {
		r := config.RestartOnly[i]
		switch r.Key {
		case "kubernetes":
			errs = append(errs, fmt.Errorf("the kubernetes section changed: %s (systemctl restart lbd)", r.Reason))
		case "peers":
			errs = append(errs, fmt.Errorf("the peers section %s: %s (systemctl restart lbd)", peersChange(prev.Peers, next.Peers), r.Reason))
		default:
			errs = append(errs, fmt.Errorf("%s changed from %v to %v: %s (systemctl restart lbd)", r.Key, r.Value(prev), r.Value(next), r.Reason))
		}
	}
	return errors.Join(errs...)
}

// peersChange says how the peers section changed, without the key.
func peersChange(prev, next *config.Peers) string {
	switch {
	case prev == nil:
		return "was added"
	case next == nil:
		return "was removed"
	}
	return "changed"
}

// Preview implements Previewer.
func (l *Local) Preview(_ context.Context, prev, next *config.Config) ([]string, error) {
	var out []string
	if prev.Listen.HTTP != next.Listen.HTTP {
		out = append(out, fmt.Sprintf("metrics and health move from %s to %s", prev.Listen.HTTP, next.Listen.HTTP))
	}
	if prev.Log.Level != next.Log.Level {
		out = append(out, fmt.Sprintf("log level %s instead of %s", next.Log.Level, prev.Log.Level))
	}
	return out, nil
}

// Apply moves the HTTP listener if its address changed and sets the level.
func (l *Local) Apply(_ context.Context, prev, next *config.Config) error {
	if prev.Listen.HTTP != next.Listen.HTTP {
		if err := l.HTTP.Listen(next.Listen.HTTP); err != nil {
			return err
		}
	}
	l.Level.Set(Level(next.Log.Level))
	return nil
}

// Level converts a configured log level.
func Level(l config.LogLevel) slog.Level {
	switch l {
	case config.LogDebug:
		return slog.LevelDebug
	case config.LogWarn:
		return slog.LevelWarn
	case config.LogError:
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLogger builds the daemon's logger. With format "auto", when w is the
// stream systemd connected to journald (JOURNAL_STREAM), records go to
// journald natively, with fields (see JournalHandler); if its socket is
// missing, as text without timestamps, since journald adds its own.
// Otherwise "auto" and "text" write text, "json" JSON.
func NewLogger(w io.Writer, format config.LogFormat, level *slog.LevelVar) *slog.Logger {
	return newLogger(w, format, level, JournalSocket)
}

func newLogger(w io.Writer, format config.LogFormat, level *slog.LevelVar, journal string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == config.LogJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	f, isFile := w.(*os.File)
	if format != config.LogAuto || !isFile || !stderrIsJournal(f) {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	text := slog.NewTextHandler(w, opts)
	h, err := NewJournalHandler(journal, level, text)
	if err != nil {
		return slog.New(text)
	}
	return slog.New(h)
}
