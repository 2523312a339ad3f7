// Package announce makes this node's share of the Service and control-plane
// addresses known to the network: ARP and NDP responders for layer 2, an
// embedded GoBGP speaker for BGP, and netlink for the control-plane VIP.
//
// Every implementation has the same small shape: the caller passes the
// complete desired set of announcements to Set and the announcer reconciles;
// Close withdraws everything and waits for its goroutines. Each announcer owns
// its sockets and its own goroutine. This package never imports k8s.io/...;
// it knows addresses, interfaces and reasons, not Services.
package announce
