package announce

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lbdproject/lbd/internal/config"
)

func newTestL2(t *testing.T, reg prometheus.Registerer) *L2 {
	t.Helper()
	l, err := NewL2(slog.New(slog.DiscardHandler), SystemClock{}, config.Gratuitous{Count: 3, Interval: 10 * time.Millisecond}, reg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestNewL2StartsNothing(t *testing.T) {
	before := runtime.NumGoroutine()
	reg := prometheus.NewPedanticRegistry()
	l := newTestL2(t, reg)
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("NewL2 started %d goroutines", n-before)
	}
	if n, err := testutil.GatherAndCount(reg, "lbd_l2_dropped_total"); err != nil || n != len(dropReasons) {
		t.Errorf("lbd_l2_dropped_total series = %d (%v), want %d", n, err, len(dropReasons))
	}
	if n, err := testutil.GatherAndCount(reg, "lbd_l2_conflicts_total"); err != nil || n != 2 {
		t.Errorf("lbd_l2_conflicts_total series = %d (%v), want 2 (ipv4, ipv6)", n, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewL2(slog.New(slog.DiscardHandler), SystemClock{}, config.Gratuitous{}, reg); err == nil {
		t.Error("registering the counter twice succeeded")
	}
}

func TestL2SetRejects(t *testing.T) {
	l := newTestL2(t, nil)
	l.ifaceByName = func(name string) (*net.Interface, error) { return nil, errors.New("no such network interface") }
	err := l.Set([]Announcement{
		{Addr: netip.Addr{}, Interface: "eth0"},
		{Addr: vip4, Interface: ""},
		{Addr: netip.MustParseAddr("ff02::1"), Interface: "eth0"},
		{Addr: vip4, Interface: "nosuch0"},
	})
	for _, want := range []string{`announce invalid IP on "eth0"`, `announce 192.0.2.10 on ""`, `announce ff02::1 on "eth0"`, "announce [192.0.2.10] on nosuch0: no such network interface"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
	if len(*l.owners.Load()) != 0 || len(l.links) != 0 {
		t.Errorf("failed Set left state: owners %v, links %v", *l.owners.Load(), l.links)
	}
	if err := l.Set(nil); err != nil {
		t.Errorf("Set(nil) = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	if err := l.Set(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
}
