package daemon

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFileWatcherStartSeesEarlyChange: a symlink swap made after Start
// returns but before Run reads events still asks for a reload. lbd run
// starts the watch before its control socket answers, so a change made
// as soon as lbd answers is not missed (TestSymlinkSwap once waited 15 s
// for a swap made in that gap).
func TestFileWatcherStartSeesEarlyChange(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lbd.yaml")
	for _, f := range []string{"v1.yaml", "v2.yaml"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("version: 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("v1.yaml", path); err != nil {
		t.Fatal(err)
	}
	reloads := make(chan struct{}, 10)
	w := NewFileWatcher(path, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), func(context.Context) {
		reloads <- struct{}{}
	})
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "lbd.yaml.new")
	if err := os.Symlink("v2.yaml", tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-reloads:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload for a swap made between Start and Run")
	}
}
