package daemon

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/lbdproject/lbd/internal/event"
	"golang.org/x/sys/unix"
)

// JournalSocket is where journald reads records in its native protocol.
const JournalSocket = "/run/systemd/journal/socket"

// JournalHandler is a slog.Handler that writes each record to journald in
// its native protocol (https://systemd.io/JOURNAL_NATIVE_PROTOCOL/), so
// attributes become fields that journalctl can match on:
//
//	MESSAGE            the record's message
//	PRIORITY           syslog level: 7 debug, 6 info, 4 warn, 3 error
//	SYSLOG_IDENTIFIER  lbd
//	LBD_<KEY>          each attribute, key upper-cased, other characters
//	                   than A-Z, 0-9 and _ replaced by _; groups prefix
//	                   their keys (LBD_GROUP_KEY)
//	MESSAGE_ID         when the attribute event names a class in event.MessageIDs
//
// A record journald cannot take (its socket gone) goes to the fallback
// handler instead. It is safe for concurrent use: each record is one
// datagram.
type JournalHandler struct {
	conn     *net.UnixConn
	addr     *net.UnixAddr
	level    slog.Leveler
	fallback slog.Handler
	prefix   string // "GROUP_" inside WithGroup("group")
	fields   []byte // fields of WithAttrs, already encoded
	event    string // an event attribute given to WithAttrs
}

// NewJournalHandler returns a handler writing to the journald socket at
// path (JournalSocket outside tests), or an error if there is none.
// Records below level are dropped; records journald refuses go to
// fallback.
func NewJournalHandler(path string, level slog.Leveler, fallback slog.Handler) (*JournalHandler, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return nil, fmt.Errorf("journal: %s is not a socket", path)
	}
	// Unconnected, as sd_journal_send does: a restarted journald makes a
	// new socket at the same path, which the next datagram finds.
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if level == nil {
		level = slog.LevelInfo
	}
	return &JournalHandler{
		conn:     conn,
		addr:     &net.UnixAddr{Name: path, Net: "unixgram"},
		level:    level,
		fallback: fallback,
	}, nil
}

// Close closes the handler's socket. Records logged afterwards go to the
// fallback handler.
func (h *JournalHandler) Close() error { return h.conn.Close() }

// Enabled implements slog.Handler.
func (h *JournalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

// WithAttrs implements slog.Handler.
func (h *JournalHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	h2 := *h
	h2.fields = append([]byte(nil), h.fields...)
	for _, a := range attrs {
		h2.fields, h2.event = appendAttr(h2.fields, h.prefix, a, h2.event)
	}
	h2.fallback = h.fallback.WithAttrs(attrs)
	return &h2
}

// WithGroup implements slog.Handler.
func (h *JournalHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + fieldName(name) + "_"
	h2.fallback = h.fallback.WithGroup(name)
	return &h2
}

// Handle implements slog.Handler.
func (h *JournalHandler) Handle(ctx context.Context, r slog.Record) error {
	b := make([]byte, 0, 256+len(h.fields))
	b = appendField(b, "MESSAGE", r.Message)
	b = appendField(b, "PRIORITY", priority(r.Level))
	b = appendField(b, "SYSLOG_IDENTIFIER", "lbd")
	b = append(b, h.fields...)
	class := h.event
	r.Attrs(func(a slog.Attr) bool {
		b, class = appendAttr(b, h.prefix, a, class)
		return true
	})
	if id, ok := event.MessageIDs[event.Class(class)]; ok {
		b = appendField(b, "MESSAGE_ID", id)
	}
	if err := h.send(b); err != nil {
		return h.fallback.Handle(ctx, r)
	}
	return nil
}

// send writes one record. A record larger than a datagram may be goes in
// a sealed memfd passed along, as journald expects.
func (h *JournalHandler) send(b []byte) error {
	_, _, err := h.conn.WriteMsgUnix(b, nil, h.addr)
	if err == nil || !(errors.Is(err, unix.EMSGSIZE) || errors.Is(err, unix.ENOBUFS)) {
		return err
	}
	fd, err := unix.MemfdCreate("lbd-journal", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for rest := b; len(rest) > 0; {
		n, err := unix.Write(fd, rest)
		if err != nil {
			return err
		}
		rest = rest[n:]
	}
	seals := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE | unix.F_SEAL_SEAL
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		return err
	}
	_, _, err = h.conn.WriteMsgUnix(nil, unix.UnixRights(fd), h.addr)
	return err
}

// appendAttr encodes one attribute (groups recursively) and notes the
// value of a top-level event attribute.
func appendAttr(b []byte, prefix string, a slog.Attr, class string) ([]byte, string) {
	v := a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b, class
	}
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += fieldName(a.Key) + "_"
		}
		for _, ga := range v.Group() {
			b, class = appendAttr(b, p, ga, class)
		}
		return b, class
	}
	var s string
	switch v.Kind() {
	case slog.KindTime:
		s = v.Time().Format(time.RFC3339Nano)
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			s = err.Error()
		} else {
			s = v.String()
		}
	default:
		s = v.String()
	}
	if prefix == "" && a.Key == event.Key {
		class = s
	}
	name := "LBD_" + prefix + fieldName(a.Key)
	if len(name) > 64 { // journald's limit on field names
		name = name[:64]
	}
	return appendField(b, name, s), class
}

// fieldName turns an attribute key into a journal field name part.
func fieldName(key string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			return r
		}
		return '_'
	}, key)
}

// appendField encodes NAME=value, or, for a value with a newline, the
// binary form: NAME, newline, little-endian 64-bit length, value, newline.
func appendField(b []byte, name, value string) []byte {
	b = append(b, name...)
	if strings.IndexByte(value, '\n') < 0 {
		b = append(b, '=')
		b = append(b, value...)
		return append(b, '\n')
	}
	b = append(b, '\n')
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, '\n')
}

// priority maps a slog level to a syslog priority.
func priority(l slog.Level) string {
	switch {
	case l < slog.LevelInfo:
		return "7"
	case l < slog.LevelWarn:
		return "6"
	case l < slog.LevelError:
		return "4"
	}
	return "3"
}

// stderrIsJournal reports whether f is the stream systemd connected to
// journald: JOURNAL_STREAM names its device and inode.
func stderrIsJournal(f *os.File) bool {
	want := os.Getenv("JOURNAL_STREAM")
	if want == "" {
		return false
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return want == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
