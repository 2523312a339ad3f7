// Package announce makes this node's share of the Service and control-plane
// addresses known to the network: ARP and NDP responders for layer 2 (L2)
// and netlink for the control-plane VIP (VIP: adds the VIP with a finite
// lifetime, renewed by each Set, so a killed lbd's VIP expires by itself).
// BGP lives in package bgp: its routes carry more than an address, so its
// Set takes routes, with the same Set/Close shape.
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
// This package never imports k8s.io/...; it knows addresses, interfaces and
// reasons, not Services. Only VIP adds addresses to interfaces; L2 never
// does.
package announce
