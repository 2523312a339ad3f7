//go:build !linux

package kubetest

import "syscall"

// sysProcAttr puts a child in its own process group; see sysproc_linux.go.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
