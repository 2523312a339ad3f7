package daemon

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/event"
)

// fakeJournal is a unixgram socket standing in for journald's.
type fakeJournal struct {
	path string
	conn *net.UnixConn
}

func newFakeJournal(t *testing.T) *fakeJournal {
	t.Helper()
	path := filepath.Join(t.TempDir(), "socket")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &fakeJournal{path: path, conn: conn}
}

// read returns the next record's fields, reading a passed memfd as
// journald does.
func (j *fakeJournal) read(t *testing.T) map[string][]string {
	t.Helper()
	buf := make([]byte, 1<<20)
	oob := make([]byte, unix.CmsgSpace(4))
	_ = j.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, oobn, _, _, err := j.conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatalf("no record reached the journal socket: %v", err)
	}
	data := buf[:n]
	if oobn > 0 {
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		fds, err := unix.ParseUnixRights(&msgs[0])
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fds[0]), "memfd")
		defer f.Close()
		seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
		if err != nil || seals&unix.F_SEAL_WRITE == 0 {
			t.Errorf("passed memfd not sealed against writes (seals %#x, %v); journald refuses it", seals, err)
		}
		var b bytes.Buffer
		// From the start: the sender's writes moved the shared offset.
		if _, err := b.ReadFrom(io.NewSectionReader(f, 0, 1<<30)); err != nil {
			t.Fatal(err)
		}
		data = b.Bytes()
	}
	fields, err := parseNative(data)
	if err != nil {
		t.Fatalf("%v in %q", err, data)
	}
	return fields
}

// expectNothing fails if a record arrives within a short wait.
func (j *fakeJournal) expectNothing(t *testing.T) {
	t.Helper()
	_ = j.conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 1<<16)
	if n, err := j.conn.Read(buf); err == nil {
		t.Errorf("unexpected record %q", buf[:n])
	}
}

// parseNative decodes journald's native protocol: NAME=value lines, or
// NAME, newline, 64-bit little-endian length, value, newline.
func parseNative(b []byte) (map[string][]string, error) {
	fields := map[string][]string{}
	for len(b) > 0 {
		i := bytes.IndexAny(b, "=\n")
		if i <= 0 {
			return nil, fmt.Errorf("no field name at %q", b)
		}
		name := string(b[:i])
		if !regexp.MustCompile(`^[A-Z0-9_]{1,64}$`).MatchString(name) || name[0] == '_' {
			return nil, fmt.Errorf("field name %q is not valid for journald", name)
		}
		if b[i] == '=' {
			j := bytes.IndexByte(b[i+1:], '\n')
			if j < 0 {
				return nil, fmt.Errorf("field %s: no final newline", name)
			}
			fields[name] = append(fields[name], string(b[i+1:i+1+j]))
			b = b[i+2+j:]
			continue
		}
		if len(b) < i+9 {
			return nil, fmt.Errorf("field %s: short length", name)
		}
		n := int(binary.LittleEndian.Uint64(b[i+1 : i+9]))
		end := i + 9 + n
		if len(b) < end+1 || b[end] != '\n' {
			return nil, fmt.Errorf("field %s: length %d does not end in a newline", name, n)
		}
		fields[name] = append(fields[name], string(b[i+9:end]))
		b = b[end+1:]
	}
	return fields, nil
}

func one(t *testing.T, fields map[string][]string, name, want string) {
	t.Helper()
	got := fields[name]
	if len(got) == 1 && got[0] == want {
		return
	}
	short := func(s string) string {
		if len(s) > 80 {
			return fmt.Sprintf("%s... (%d bytes)", s[:80], len(s))
		}
		return s
	}
	for i := range got {
		got[i] = short(got[i])
	}
	t.Errorf("%s = %q, want exactly %q", name, got, short(want))
}

func TestJournalHandlerFields(t *testing.T) {
	j := newFakeJournal(t)
	var fallback bytes.Buffer
	h, err := NewJournalHandler(j.path, slog.LevelInfo, slog.NewTextHandler(&fallback, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	log := slog.New(h)

	log.Error("configuration rejected; the previous one stays in force",
		"event", event.ConfigRejected, "vip", "192.0.2.10", "service", "default/web",
		"peer", "tor-1", "running_hash", "abc", "err", errors.New("pools[0]: bad\npools[1]: worse"))
	f := j.read(t)
	one(t, f, "MESSAGE", "configuration rejected; the previous one stays in force")
	one(t, f, "PRIORITY", "3")
	one(t, f, "SYSLOG_IDENTIFIER", "lbd")
	one(t, f, "LBD_EVENT", "config_rejected")
	one(t, f, "MESSAGE_ID", "f9706c7ccb2f497b9008a31f27fc6357")
	one(t, f, "LBD_VIP", "192.0.2.10")
	one(t, f, "LBD_SERVICE", "default/web")
	one(t, f, "LBD_PEER", "tor-1")
	one(t, f, "LBD_RUNNING_HASH", "abc")
	one(t, f, "LBD_ERR", "pools[0]: bad\npools[1]: worse") // the binary form

	// Attributes bound early, groups, odd keys, levels.
	log.With("event", event.Takeover, "node", "cp1").WithGroup("bgp").Warn("x", "peer", "198.51.100.1", "weird-key.1", 7)
	f = j.read(t)
	one(t, f, "PRIORITY", "4")
	one(t, f, "LBD_EVENT", "takeover")
	one(t, f, "MESSAGE_ID", event.MessageIDs[event.Takeover])
	one(t, f, "LBD_NODE", "cp1")
	one(t, f, "LBD_BGP_PEER", "198.51.100.1")
	one(t, f, "LBD_BGP_WEIRD_KEY_1", "7")

	// An event attribute inside a group is not the record's class; an
	// unknown class gets no MESSAGE_ID.
	log.Info("y", slog.Group("sub", "event", event.Takeover), "ip", "2001:db8::1")
	f = j.read(t)
	one(t, f, "PRIORITY", "6")
	one(t, f, "LBD_SUB_EVENT", "takeover")
	one(t, f, "LBD_IP", "2001:db8::1")
	if _, ok := f["MESSAGE_ID"]; ok {
		t.Errorf("MESSAGE_ID without a top-level event: %v", f["MESSAGE_ID"])
	}
	log.Info("z", "event", "no_such_class")
	if f = j.read(t); f["MESSAGE_ID"] != nil {
		t.Errorf("MESSAGE_ID for an unknown class: %v", f["MESSAGE_ID"])
	}

	log.Debug("below the level")
	j.expectNothing(t)
	if fallback.Len() != 0 {
		t.Errorf("fallback used while the journal works: %q", fallback.String())
	}
}

func TestJournalHandlerLargeRecordByMemfd(t *testing.T) {
	j := newFakeJournal(t)
	h, err := NewJournalHandler(j.path, slog.LevelInfo, slog.NewTextHandler(os.Stderr, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB: no datagram takes it
	slog.New(h).Info("big", "event", event.ConfigApplied, "summary", big)
	f := j.read(t)
	one(t, f, "LBD_SUMMARY", big)
	one(t, f, "MESSAGE_ID", event.MessageIDs[event.ConfigApplied])
}

func TestJournalHandlerFallsBack(t *testing.T) {
	if _, err := NewJournalHandler(filepath.Join(t.TempDir(), "none"), nil, slog.NewTextHandler(os.Stderr, nil)); err == nil {
		t.Error("a handler for a missing socket")
	}
	j := newFakeJournal(t)
	var fallback bytes.Buffer
	h, err := NewJournalHandler(j.path, slog.LevelInfo, slog.NewTextHandler(&fallback, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	log := slog.New(h).With("node", "cp1")
	j.conn.Close() // journald went away
	log.Info("still logged", "event", event.Release)
	if out := fallback.String(); !strings.Contains(out, `msg="still logged" node=cp1 event=release`) {
		t.Errorf("fallback got %q", out)
	}
}

func TestNewLoggerUsesJournalOnlyForItsStream(t *testing.T) {
	j := newFakeJournal(t)
	stream, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(stream.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)

	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	newLogger(stream, config.LogAuto, level, j.path).Info("native", "vip", "192.0.2.1")
	one(t, j.read(t), "LBD_VIP", "192.0.2.1")

	// Explicit text or JSON is respected even on the journal stream.
	newLogger(stream, config.LogText, level, j.path).Info("as text")
	j.expectNothing(t)

	// No journal socket: text without timestamps (journald adds them).
	newLogger(stream, config.LogAuto, level, filepath.Join(t.TempDir(), "none")).Info("no socket")
	out, _ := os.ReadFile(stream.Name())
	if !strings.Contains(string(out), "\nlevel=INFO msg=\"no socket\"\n") {
		t.Errorf("fallback text = %q", out)
	}

	// Another stream (stderr redirected to a file): text with time.
	t.Setenv("JOURNAL_STREAM", "1:2")
	var buf bytes.Buffer
	newLogger(stream, config.LogAuto, level, j.path).Info("elsewhere")
	j.expectNothing(t)
	newLogger(&buf, config.LogAuto, level, j.path).Info("buffer")
	if !strings.Contains(buf.String(), "time=") {
		t.Errorf("text on a non-journal stream lacks time: %q", buf.String())
	}
}
