package netlab_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/netlab"
)

// TestSegment: two hosts on the switch reach each other, a pulled cable
// cuts them apart and plugging it back joins them again.
func TestSegment(t *testing.T) {
	netlab.Need(t, "ping")
	l := netlab.New(t)
	a := l.AddHost("a", "192.0.2.1/24", "2001:db8::1/64")
	b := l.AddHost("b", "192.0.2.2/24", "2001:db8::2/64")
	l.WaitReachable(a, "192.0.2.2", 5*time.Second)
	l.WaitReachable(b, "2001:db8::1", 5*time.Second)
	if a.MAC == b.MAC || !strings.Contains(a.MAC, ":") {
		t.Fatalf("MACs %q and %q", a.MAC, b.MAC)
	}

	l.Unplug(b)
	if out, err := a.Run("ping", "-c", "1", "-W", "1", "192.0.2.2"); err == nil {
		t.Fatalf("ping across a pulled cable succeeded:\n%s", out)
	}
	l.Plug(b)
	l.WaitReachable(a, "192.0.2.2", 5*time.Second)
}

// TestDialContext: the test process reaches a listener that exists only
// inside a host, and the connection really comes from inside it.
func TestDialContext(t *testing.T) {
	netlab.Need(t, "ping")
	l := netlab.New(t)
	a := l.AddHost("a", "192.0.2.1/24")
	b := l.AddHost("b", "192.0.2.2/24")
	l.WaitReachable(a, "192.0.2.2", 5*time.Second)

	// A listener in b, opened by b's own process: a shell that prints
	// its peer, via a one-shot python server.
	srv := b.Command("python3", "-c", `
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("192.0.2.2", 7000)); s.listen(1); print("ready", flush=True)
c, peer = s.accept(); c.sendall(peer[0].encode()); c.close()
`)
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Skipf("python3: %v", err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	buf := make([]byte, 6)
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "ready\n" {
		t.Fatalf("server did not start: %q %v", buf, err)
	}

	// From the host's own namespace 192.0.2.2 is not reachable; from a
	// it is, with a's address as source.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := a.DialContext(ctx, "tcp", "192.0.2.2:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer, err := io.ReadAll(c)
	if err != nil || string(peer) != "192.0.2.1" {
		t.Fatalf("server saw peer %q (%v), want 192.0.2.1", peer, err)
	}
	if host, _, _ := net.SplitHostPort(c.LocalAddr().String()); host != "192.0.2.1" {
		t.Fatalf("local address %s, want 192.0.2.1", c.LocalAddr())
	}
}
