// Package announce makes this node's share of the Service and control-plane
// addresses known to the network: ARP and NDP responders for layer 2 (L2)
// and netlink for the control-plane VIP (VIP: adds the VIP with a finite
// lifetime, renewed by each Set, so a killed lbd's VIP expires by itself),
// with Herald sending the VIP's gratuitous ARP / unsolicited NA from the
// same packet code and schedule as L2. BGP lives in package bgp: its routes
// carry more than an address, so its Set takes routes, with the same
// Set/Close shape.
//
// Every implementation has the same small shape, Announcer: the caller
// passes the complete desired set of announcements to Set and the announcer
// reconciles; Close withdraws everything and waits for its goroutines.
// Constructors open nothing and start nothing; Set does. Set and Close may be
// called from any goroutine and are serialised. Each announcer owns its
// sockets and goroutines; the L2 responders read an immutable snapshot of
// what is announced, replaced by each Set.
//
// The decisions on received packets (decideARP, decideNDP) are pure
// functions returning a drop reason, counted in lbd_l2_dropped_total.
//
// With L2.DetectConflicts, each new address is probed before it is
// announced (RFC 5227 ARP probe, IPv6 duplicate address detection), every
// received packet that claims an announced address (arpSender, ndpSender)
// is checked against this node's MAC and the peers' (L2.SetPeers), and an
// address another host uses is not announced: reported through
// ConflictOptions.OnConflict, L2.Conflicts and lbd_l2_conflicts_total, and
// probed again after a quiet period. Each address's goroutine runs its
// probe, burst and re-probe; its state changes under L2's mutex.
//
// This package never imports k8s.io/...; it knows addresses, interfaces and
// reasons, not Services. Only VIP adds addresses to interfaces; L2 never
// does.
package announce
