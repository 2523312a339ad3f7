package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestAnsibleRollOrder runs the rolling playbook's ordering (--tags order:
// nothing is installed) on five local stand-in nodes whose `lbd status -o
// json` is a script: the workers roll first, then the control-plane nodes
// that do not hold the VIP (one of them without lbd yet), and the VIP
// holder last, whatever the inventory's order.
func TestAnsibleRollOrder(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		if v := os.Getenv("LBD_REQUIRE_TOOLS"); v != "" && v != "0" {
			t.Fatal("ansible-playbook is not installed (apt-get install ansible)")
		}
		t.Skip("needs ansible-playbook (apt-get install ansible)")
	}
	dir := t.TempDir()
	stub := func(name, json string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+json+"'\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leading := stub("leading", `{"control_plane":{"holder":"cp2","leading":true}}`)
	following := stub("following", `{"control_plane":{"holder":"cp2","leading":false}}`)
	worker := stub("worker", `{"node":"w1"}`)
	absent := filepath.Join(dir, "absent")
	inventory := filepath.Join(dir, "hosts.yml")
	if err := os.WriteFile(inventory, []byte(`all:
  vars: {ansible_connection: local, ansible_become: false, ansible_python_interpreter: /usr/bin/python3}
  children:
    lbd:
      children:
        control_plane:
          hosts:
            cp2: {lbd_binary: `+leading+`}
            cp1: {lbd_binary: `+following+`}
            cp3: {lbd_binary: `+absent+`}
          vars:
            lbd_control_plane: {addresses: [192.0.2.10], interface: eth0}
        workers:
          hosts:
            w1: {lbd_binary: `+worker+`}
            w2: {lbd_binary: `+absent+`}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ansible-playbook", "-i", inventory, "playbooks/site.yml", "--tags", "order")
	cmd.Dir = "ansible"
	cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"), "ANSIBLE_RETRY_FILES_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ansible-playbook --tags order: %v\n%s", err, out)
	}
	var order []string
	for _, m := range regexp.MustCompile(`"rolling (\S+) \(rank (\d)\)"`).FindAllStringSubmatch(string(out), -1) {
		order = append(order, m[1]+":"+m[2])
	}
	want := []string{"w1:0", "w2:0", "cp1:1", "cp3:1", "cp2:2"}
	if !slices.Equal(order, want) {
		t.Errorf("roll order %v, want %v\n%s", order, want, strings.TrimSpace(string(out)))
	}
}
