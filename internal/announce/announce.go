package announce

import (
	"net/netip"
	"time"
)

// Announcement is one address this node must announce, on one interface.
type Announcement struct {
	Addr      netip.Addr
	Interface string
	// Reason says why this node announces Addr, for logs and status.
	Reason string
	// FromPeer says that another lbd node answered for Addr until now (a
	// take-over): the address is taken without a conflict probe, which
	// looks for foreign hosts and would only delay the failover. Conflicts
	// are still watched for while it is announced.
	FromPeer bool
}

// Announcer makes a set of addresses known to the network.
//
// Set and Close may be called from any goroutine; calls are serialised.
type Announcer interface {
	// Set replaces the desired set with desired, which is always complete:
	// addresses missing from it are withdrawn. Calling Set again with the
	// same set changes nothing.
	Set(desired []Announcement) error
	// Close withdraws everything and waits for the announcer's goroutines.
	Close() error
}

// Clock is the source of timers for periodic sends; tests pass a fake.
type Clock interface {
	After(d time.Duration) <-chan time.Time
}

// SystemClock is the real Clock.
type SystemClock struct{}

// After waits for d on the system clock.
func (SystemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
