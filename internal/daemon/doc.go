// Package daemon holds the parts of `lbd run` that are not about load
// balancing: the reloader that owns the current configuration and
// serialises every reload trigger through one goroutine, the watcher of the
// configuration file, the control socket used by `lbd reload` and
// `lbd status`, and the HTTP listener for metrics and health.
//
// Subsystems (allocation, announcers, the control-plane VIP) plug into the
// reloader through the Subsystem interface. cmd/lbd wires everything.
package daemon
