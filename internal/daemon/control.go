package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lbdproject/lbd/internal/status"
)

// The control socket speaks one JSON request and one JSON response per
// connection. It is how `lbd reload` and `lbd status` talk to the daemon.

// ReadOnly are the commands anyone who can open the socket may send (the
// lbd group, whose members read the status without root); every other
// command needs root.
var ReadOnly = map[string]bool{"status": true}

// Request is what a client sends.
type Request struct {
	Command string `json:"command"` // "reload", "dry-run" or "status"
}

// Response is what the daemon answers.
type Response struct {
	OK      bool           `json:"ok"`
	Message string         `json:"message,omitempty"`
	Error   string         `json:"error,omitempty"`
	Status  *status.Status `json:"status,omitempty"`
}

// ControlServer answers requests on the control socket.
type ControlServer struct {
	path    string
	log     *slog.Logger
	handle  func(ctx context.Context, req Request) Response
	ln      net.Listener
	wg      sync.WaitGroup
	closeMu sync.Once
}

// ListenControl binds the control socket at path, replacing a stale socket
// file left by a killed daemon but refusing to steal a live one. The
// socket is made readable only by root and the file's group (lbd.service
// runs with Group=lbd, so members of the lbd group may ask for the
// status; anything else needs root, checked per connection).
func ListenControl(path string, log *slog.Logger, handle func(context.Context, Request) Response) (*ControlServer, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another lbd is already running", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &ControlServer{path: path, log: log, handle: handle, ln: ln}, nil
}

// Serve answers connections until Close.
func (s *ControlServer) Serve(ctx context.Context) {
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() {
			defer conn.Close()
			s.serveConn(ctx, conn)
		})
	}
}

func (s *ControlServer) serveConn(ctx context.Context, conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var req Request
	if err := json.NewDecoder(bufio.NewReader(io.LimitReader(conn, 64<<10))).Decode(&req); err != nil {
		if !errors.Is(err, io.EOF) { // EOF: a client that only checked we are here
			s.write(conn, Response{Error: "bad request: " + err.Error()})
		}
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	if !ReadOnly[req.Command] {
		if uid, ok := peerUID(conn); !ok || uid != 0 {
			s.write(conn, Response{Error: fmt.Sprintf("%q needs root: members of the lbd group may ask for the status only", req.Command)})
			return
		}
	}
	s.write(conn, s.handle(ctx, req))
}

// peerUID is the user ID of the process at the other end of conn
// (SO_PEERCRED: what the kernel recorded at connect, not what the client
// claims).
func peerUID(conn net.Conn) (uint32, bool) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return 0, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return 0, false
	}
	return cred.Uid, true
}

func (s *ControlServer) write(conn net.Conn, resp Response) {
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewEncoder(conn).Encode(resp); err != nil {
		s.log.Debug("control socket write failed", "err", err)
	}
}

// Close stops accepting, waits for open requests and removes the socket.
func (s *ControlServer) Close() error {
	var err error
	s.closeMu.Do(func() {
		err = s.ln.Close()
		s.wg.Wait()
	})
	return err
}

// Call sends one request to the daemon listening at path.
func Call(ctx context.Context, path string, req Request) (Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Response{}, fmt.Errorf("cannot reach lbd at %s (is it running? systemctl status lbd): %w", path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return Response{}, fmt.Errorf("send to lbd at %s: %w", path, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("read answer from lbd at %s: %w", path, err)
	}
	return resp, nil
}
