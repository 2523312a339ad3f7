package kubetest

import "syscall"

// sysProcAttr puts a child in its own process group (so a terminal's ^C
// reaches only the test binary, which then cleans up) and has the kernel
// SIGKILL it if the test binary dies without cleaning up (e.g. on a go test
// timeout). Pdeathsig follows the OS thread that started the child; the Go
// runtime only ends threads whose goroutine exits while locked to it, so do
// not call Start from a goroutine that does runtime.LockOSThread and exits.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
