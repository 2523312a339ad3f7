package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultDebounce is how long the file must stay quiet before a reload.
const DefaultDebounce = 300 * time.Millisecond

// FileWatcher asks for a reload when the configuration file changes. It
// watches the file's directory, not the file, so that every way of
// replacing it is seen: an editor's write-to-temp-and-rename, Ansible's
// atomic move, a symlink swap (including Kubernetes' "..data" style), or a
// plain write. Bursts of events are debounced into one reload.
type FileWatcher struct {
	path     string
	debounce time.Duration
	log      *slog.Logger
	reload   func(ctx context.Context)
	// Also, if set, names more files whose change asks for a reload (the
	// BGP password files of the configuration in force, which Vault
	// Agent or Ansible rewrite); asked again after each reload.
	Also func() []string

	fw   *fsnotify.Watcher // set by Start
	dirs map[string]bool   // the directories fw watches
}

// NewFileWatcher returns a watcher that calls reload after path changes.
func NewFileWatcher(path string, debounce time.Duration, log *slog.Logger, reload func(ctx context.Context)) *FileWatcher {
	return &FileWatcher{path: path, debounce: debounce, log: log, reload: reload}
}

// Start begins watching: a change made after it returns is seen. Run
// calls it when the caller has not; lbd run calls it before it answers on
// its control socket, so that a change made as soon as lbd answers is
// not missed.
func (w *FileWatcher) Start() error {
	if w.fw != nil {
		return nil
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", w.path, err)
	}
	w.fw, w.dirs = fw, map[string]bool{}
	if err := w.watchDirs(); err != nil {
		fw.Close()
		w.fw = nil
		return err
	}
	return nil
}

// watchDirs (re)adds the directories of the path and of the file it
// resolves to now; a symlink swap may point it somewhere new.
func (w *FileWatcher) watchDirs() error {
	var want []string
	for _, p := range w.files() {
		want = append(want, filepath.Dir(p))
		if real, err := filepath.EvalSymlinks(p); err == nil {
			want = append(want, filepath.Dir(real))
		}
	}
	for _, d := range want {
		if w.dirs[d] {
			continue
		}
		if err := w.fw.Add(d); err != nil {
			return fmt.Errorf("watch directory %s: %w", d, err)
		}
		w.dirs[d] = true
	}
	return nil
}

// Run watches until ctx ends. It returns an error only if watching cannot
// start at all.
func (w *FileWatcher) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	fw := w.fw
	defer fw.Close()

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if w.relevant(ev.Name) {
				timer.Reset(w.debounce)
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			w.log.Warn("file watch error; SIGHUP and lbd reload still work", "file", w.path, "err", err)
		case <-timer.C:
			if err := w.watchDirs(); err != nil {
				w.log.Warn("cannot watch the configuration's directory", "file", w.path, "err", err)
			}
			w.reload(ctx)
		}
	}
}

// files are the configuration file and the others it names.
func (w *FileWatcher) files() []string {
	out := []string{w.path}
	if w.Also != nil {
		out = append(out, w.Also()...)
	}
	return out
}

// relevant reports whether an event on name may have changed a file.
func (w *FileWatcher) relevant(name string) bool {
	base := filepath.Base(name)
	if strings.HasPrefix(base, "..") {
		return true
	}
	for _, p := range w.files() {
		if base == filepath.Base(p) {
			return true
		}
		if real, err := filepath.EvalSymlinks(p); err == nil && filepath.Base(real) == base {
			return true
		}
	}
	return false
}
