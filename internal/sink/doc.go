// Package sink carries out the node agent's decisions, one sink per mode,
// side by side: L2 hands the L2 decisions to the ARP/NDP announcer
// (internal/announce), BGP turns the BGP decisions into routes for the
// embedded speaker (internal/bgp). Each implements agent.Sink: Set takes
// the complete desired set of its mode, from the agent's goroutine, and
// reconciles; Reload follows configuration changes; Close withdraws.
//
// It never imports k8s.io (internal/deps_test.go checks): the agent's
// decisions and the configuration are all it reads.
package sink
