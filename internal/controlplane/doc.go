// Package controlplane holds the control-plane VIP: the election of its
// holder over a Lease (Election), always through this node's own API
// server (LocalClient) and only while that API server passes /readyz
// (Health); the VIP itself, added by netlink with a finite lifetime and
// announced by gratuitous ARP / unsolicited NA (internal/announce); its
// lbd_control_plane_* metrics; and the reloader subsystem (Subsystem) that
// runs one election per control_plane section and reports its status.
//
// One goroutine owns an election's state (Election.Run); the readiness
// poll and the Lease watch run in their own goroutines and send it events.
// It does not use client-go's leader elector, which retries on a jittered
// period and cannot take a released Lease at once.
package controlplane
