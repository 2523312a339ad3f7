package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// controlClientEnv makes this test binary a control-socket client: it
// sends the command in the variable to the socket in os.Args[1] and prints
// the response as JSON.
const controlClientEnv = "LBD_TEST_CONTROL_CLIENT"

func TestMain(m *testing.M) {
	if cmd := os.Getenv(controlClientEnv); cmd != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, err := Call(ctx, os.Args[len(os.Args)-1], Request{Command: cmd})
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(resp)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestControlSocketRootOnly: a client that is not root may ask for the
// status and nothing else, whatever it sends; root may send anything. The
// client runs as nobody (uid 65534) in a child process, so the daemon sees
// its real credentials.
func TestControlSocketRootOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a client as another user")
	}
	dir := t.TempDir()
	// The test's directories, open to the other user.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "lbd.sock")
	// The client: this test binary, where another user may run it.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	client := filepath.Join(dir, "client")
	if err := os.WriteFile(client, self, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	handled := map[string]int{}
	srv, err := ListenControl(path, slog.New(slog.NewTextHandler(io.Discard, nil)), func(_ context.Context, req Request) Response {
		mu.Lock()
		defer mu.Unlock()
		handled[req.Command]++
		return Response{OK: true, Message: "done " + req.Command}
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background())
	defer srv.Close()
	// Here anyone may connect; lbd.service limits it to root and the lbd
	// group through the socket's mode and group.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	call := func(uid uint32, command string) Response {
		t.Helper()
		cmd := exec.Command(client, "-test.run=^$", path)
		cmd.Env = append(os.Environ(), controlClientEnv+"="+command)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("client as uid %d, %s: %v\n%s", uid, command, err, out)
		}
		var resp Response
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("client as uid %d, %s: %q: %v", uid, command, out, err)
		}
		return resp
	}
	for _, command := range []string{"reload", "dry-run", "anything"} {
		if resp := call(65534, command); resp.OK || !strings.Contains(resp.Error, "needs root") {
			t.Errorf("nobody sent %s: %+v, want refused", command, resp)
		}
	}
	if resp := call(65534, "status"); !resp.OK {
		t.Errorf("nobody asked for the status: %+v", resp)
	}
	if resp := call(0, "reload"); !resp.OK {
		t.Errorf("root sent reload: %+v", resp)
	}
	mu.Lock()
	defer mu.Unlock()
	if handled["reload"] != 1 || handled["dry-run"] != 0 || handled["anything"] != 0 || handled["status"] != 1 {
		t.Errorf("the daemon handled %v, want one status (nobody) and one reload (root)", handled)
	}
}
