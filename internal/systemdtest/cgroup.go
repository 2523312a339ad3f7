package systemdtest

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// A cgroup of its own for each container. nspawn --keep-unit puts the
// container in the cgroup it was started in; two containers sharing the
// test process's cgroup collide (one booted degraded:
// systemd-user-sessions "Failed to attach to cgroup"). With one each,
// containers boot side by side.
type cgroup struct {
	dirs []string // one per hierarchy: name=systemd (v1) and the unified (v2)
}

// newCgroup makes a cgroup named name under the test process's own, in
// each hierarchy nspawn reads: the named systemd one of a v1 or hybrid
// host and the unified one.
func newCgroup(name string) (*cgroup, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cg := &cgroup{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var mount string
		switch {
		case parts[1] == "name=systemd":
			mount = "/sys/fs/cgroup/systemd"
		case parts[0] == "0" && parts[1] == "":
			mount = "/sys/fs/cgroup/unified"
			if _, err := os.Stat(mount); err != nil {
				mount = "/sys/fs/cgroup" // a cgroup v2 host
			}
		default:
			continue
		}
		if _, err := os.Stat(filepath.Join(mount, "cgroup.procs")); err != nil {
			continue
		}
		dir := filepath.Join(mount, parts[2], name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			cg.remove()
			return nil, err
		}
		cg.dirs = append(cg.dirs, dir)
	}
	if err := s.Err(); err != nil {
		cg.remove()
		return nil, err
	}
	if len(cg.dirs) == 0 {
		return nil, errors.New("no systemd or unified cgroup hierarchy in /proc/self/cgroup")
	}
	return cg, nil
}

// procs are the files a process writes its PID to, to move itself in.
func (cg *cgroup) procs() []string {
	var out []string
	for _, d := range cg.dirs {
		out = append(out, filepath.Join(d, "cgroup.procs"))
	}
	return out
}

// remove deletes the cgroups and what the container's systemd made
// under them, deepest first, once their processes are gone (the kernel
// takes a moment to empty them after PID 1 exits).
func (cg *cgroup) remove() error {
	var errs []error
	for _, d := range cg.dirs {
		var dirs []string
		_ = filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		slices.Reverse(dirs)
		for _, sub := range dirs {
			var err error
			for range 50 {
				if err = os.Remove(sub); err == nil || errors.Is(err, fs.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup %s: %w", sub, err))
			}
		}
	}
	return errors.Join(errs...)
}
