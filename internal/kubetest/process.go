package kubetest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// process is one child (etcd or kube-apiserver) with its output in a file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has been reaped
	waitErr error         // valid after done is closed
}

// startProcess starts argv with stdout and stderr appended to logPath.
func startProcess(name string, argv []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	defer logFile.Close() // the child holds its own descriptor
	fmt.Fprintf(logFile, "==== kubetest %s: starting %q\n", time.Now().Format(time.RFC3339Nano), argv)

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process's PID and SIGKILL if it has not exited
// after grace; with grace <= 0 it sends SIGKILL at once. It is safe to call
// more than once.
func (p *process) stop(grace time.Duration) error {
	if done, _ := p.exited(); done {
		return nil
	}
	pid := p.cmd.Process.Pid
	if grace > 0 {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("sending SIGTERM to %s (pid %d): %w", p.name, pid, err)
		}
		select {
		case <-p.done:
			return nil
		case <-time.After(grace):
		}
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sending SIGKILL to %s (pid %d): %w", p.name, pid, err)
	}
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pid)
	}
	if grace > 0 {
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", p.name, pid, grace)
	}
	return nil
}

// logTail returns the last lines of the process's log, for error messages.
func (p *process) logTail() string {
	return fileTail(p.logPath, 40)
}

// fileTail returns the last n lines of the last 64 KiB of a file.
func fileTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	const maxTail = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > maxTail {
		if _, err := f.Seek(-maxTail, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot seek %s: %v)", path, err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	return tail(b, n)
}

// failure wraps err with the tail of the process's log.
func (p *process) failure(err error) error {
	return fmt.Errorf("%w\n---- last lines of %s ----\n%s", err, p.logPath, p.logTail())
}

// freePorts asks the kernel for n distinct unused TCP ports on ip. They are
// released again before they are returned, so there is a small window in
// which something else could take one; Start retries when that happens.
func freePorts(ip net.IP, n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			return nil, fmt.Errorf("finding a free port on %s: %w", ip, err)
		}
		defer l.Close() // held until all are chosen, so they differ
		_, port, err := net.SplitHostPort(l.Addr().String())
		if err != nil {
			return nil, fmt.Errorf("parsing listener address %s: %w", l.Addr(), err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("parsing port %q: %w", port, err)
		}
		ports = append(ports, p)
	}
	return ports, nil
}
