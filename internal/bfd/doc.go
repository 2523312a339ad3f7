// Package bfd is Bidirectional Forwarding Detection (RFC 5880) in
// asynchronous mode over single-hop UDP (RFC 5881), for IPv4 and IPv6:
// lbd runs one session per BGP peer that asks for it, so that a router
// stops sending traffic to a node that lost power within a second instead
// of the BGP hold time.
//
// It owns its sockets and one goroutine (Manager.Run); callers pass the
// complete desired set of sessions (Manager.Set) and hear of state changes
// through a callback. The session state machine (session.go) is pure: it
// takes packets and the time and returns what to send, so it is tested
// against the RFC's transitions without sockets or sleeps.
//
// Not implemented, on purpose: the echo function, demand mode and
// authentication (docs/bgp.md says why). It never imports GoBGP or k8s.io.
package bfd
