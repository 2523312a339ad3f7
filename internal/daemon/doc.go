// Package daemon holds the parts of `lbd run` that are not about load
// balancing: the reloader that owns the current configuration and
// serialises every reload trigger through one goroutine, the watcher of the
// configuration file, the control socket used by `lbd reload` and
// `lbd status`, the HTTP listener for metrics and health, the systemd
// notifications, and the logger: under systemd it writes journald's native
// protocol (JournalHandler) and adds a fixed MESSAGE_ID to records whose
// `event` attribute names a class in events.go; other packages just log
// `event` with one of those names.
//
// Subsystems (allocation, announcers, the control-plane VIP) plug into the
// reloader through the Subsystem interface. cmd/lbd wires everything.
package daemon
