// Package systemdtest boots a Debian 12 container with systemd as PID 1
// for tests that need a real service manager: a packaged lbd started,
// reloaded, watched and stopped by systemd, or an Ansible role run against
// a real host.
//
// Image debootstraps Debian 12 (minbase with systemd, dbus, iproute2 and
// python3) once into ${XDG_CACHE_HOME:-$HOME/.cache}/lbd/nspawn/<version>,
// from the Debian mirror in the host's apt sources, and reuses it after
// (WithSuite("trixie") does the same for Debian 13 and its systemd 257).
// Boot lays a fresh overlay (or, without overlayfs, a copy) over that tree
// for each test, creates a network namespace (or joins the caller's), runs
// systemd-nspawn --boot in it and waits until systemd reports the system
// running. Container.Run executes a command inside with nsenter; the
// container's PID 1 (Container.PID) is also what Ansible's
// community.docker.nsenter connection needs (ansible_nsenter_pid). Cleanup
// powers the container off, kills what is left by PID, unmounts, deletes
// the namespace and removes the tree.
//
// Tests need root, debootstrap, systemd-nspawn (systemd-container) and
// nsenter; without them Boot skips the test, or fails it when
// LBD_REQUIRE_SYSTEMD is set (as CI does). This is test code: import it
// from _test.go files only. See docs/testing.md.
package systemdtest
