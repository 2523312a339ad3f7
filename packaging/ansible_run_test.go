package packaging_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lbdproject/lbd/internal/systemdtest"
	"go.yaml.in/yaml/v3"
)

// TestAnsibleRoleInContainer runs playbooks/site.yml, with the role and the
// .deb, against a booted Debian 12 (systemd as PID 1) through Ansible's
// community.docker.nsenter connection: the first run installs and starts
// lbd, the second changes nothing, a pool range lbd rejects stops the play
// at the template's validate and leaves the running configuration alone,
// and a valid change is applied by a reload.
func TestAnsibleRoleInContainer(t *testing.T) {
	containerTest(t)
	if _, err := exec.LookPath("ansible-playbook"); err != nil {
		if v := os.Getenv("LBD_REQUIRE_TOOLS"); v != "" && v != "0" {
			t.Fatal("needs ansible-playbook (apt-get install ansible); LBD_REQUIRE_TOOLS is set")
		}
		t.Skip("needs ansible-playbook (apt-get install ansible)")
	}
	c := systemdtest.Boot(t, systemdtest.WithNetSysctls())
	deb := debFile(t)
	installNodeBasics(t, c)
	installCA(t, c)
	hostArpIgnore := readFile(t, "/proc/sys/net/ipv4/conf/all/arp_ignore")

	dir := t.TempDir()
	const secret = "s3cret-md5-Pa55"
	inventory := filepath.Join(dir, "hosts.yml")
	if err := os.WriteFile(inventory, []byte(fmt.Sprintf(`all:
  children:
    lbd:
      hosts:
        node1:
          ansible_connection: community.docker.nsenter
          ansible_nsenter_pid: %d
          ansible_python_interpreter: /usr/bin/python3
          # nsenter already runs as root, and the container has no sudo.
          ansible_become: false
  vars:
    lbd_package_source: deb
    lbd_package_deb: %s
    lbd_node_name: node1
    lbd_pools:
      - name: default
        addresses: [192.0.2.200-192.0.2.250]
    lbd_l2:
      advertisements:
        - name: default
          pools: [default]
    lbd_bgp:
      asn: 64512
      # The container has no IPv4 address to take the router ID from.
      router_id: 192.0.2.1
      peers:
        - name: tor
          address: 198.51.100.1
          asn: 64501
          password_file: /etc/lbd/bgp-password
      advertisements:
        - name: default
          pools: [default]
    lbd_bgp_password_files:
      /etc/lbd/bgp-password: %s
    lbd_log:
      level: debug
    # The container plays the CA host too: kubeadm and a cluster CA.
    lbd_identity_ca_host: node1
    lbd_identity_kubeadm: /usr/local/bin/kubeadm
    lbd_identity_kubeadm_config: /etc/kubernetes/kubeadm.yaml
    # No Kubernetes API server runs for this container, so /readyz stays
    # 503 (it means lbd works with the cluster); the play waits for
    # /livez here instead.
    lbd_readyz_url: http://127.0.0.1:7475/livez
`, c.PID, deb, secret)), 0o644); err != nil {
		t.Fatal(err)
	}
	play := func(extra ...string) (recap, string, error) {
		t.Helper()
		args := append([]string{"-i", inventory, "playbooks/site.yml"}, extra...)
		cmd := exec.Command("ansible-playbook", args...)
		cmd.Dir = "ansible"
		cmd.Env = append(os.Environ(), "ANSIBLE_NOCOLOR=1", "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"), "ANSIBLE_RETRY_FILES_ENABLED=0")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		t.Logf("ansible-playbook %s: %s", strings.Join(extra, " "), time.Since(start).Round(100*time.Millisecond))
		return parseRecap(t, string(out)), string(out), err
	}

	// 0. Without a package to install, the role fails before changing
	// the node, and says what to set.
	for _, tc := range []struct{ extra, want string }{
		{"lbd_package_deb=", "lbd_package_deb names no file"},
		{"lbd_package_source=repo", "no APT source of this node has lbd"},
	} {
		if _, out, err := play("-e", tc.extra); err == nil || !strings.Contains(strings.Join(strings.Fields(out), " "), tc.want) {
			t.Errorf("run with %s: %v, want a failure saying %q\n%s", tc.extra, err, tc.want, out)
		}
		if _, err := c.Run("dpkg", "-s", "lbd"); err == nil {
			t.Fatalf("run with %s installed lbd", tc.extra)
		}
	}

	// 1. First run: installs, configures, starts, waits for /readyz.
	r, out, err := play()
	if err != nil || r.failed != 0 || r.changed == 0 {
		t.Fatalf("first run: %v, %+v\n%s", err, r, out)
	}
	t.Logf("first run: %+v", r)
	if got := strings.TrimSpace(c.MustRun("systemctl", "is-active", "lbd")); got != "active" {
		t.Fatalf("lbd after the first run: %s", got)
	}
	if got := strings.TrimSpace(c.MustRun("systemctl", "is-enabled", "lbd")); got != "enabled" {
		t.Errorf("lbd is %s after the first run, want enabled", got)
	}
	if got := strings.TrimSpace(c.MustRun("stat", "-c", "%a %U %G", "/etc/lbd.yaml")); got != "640 root root" {
		t.Errorf("/etc/lbd.yaml: mode and owner %q, want 640 root root", got)
	}
	for name, want := range map[string]string{"arp_ignore": "1", "arp_announce": "2"} {
		if got := strings.TrimSpace(c.MustRun("cat", "/proc/sys/net/ipv4/conf/all/"+name)); got != want {
			t.Errorf("net.ipv4.conf.all.%s in the container = %s, want %s", name, got, want)
		}
	}
	if got := readFile(t, "/proc/sys/net/ipv4/conf/all/arp_ignore"); got != hostArpIgnore {
		t.Errorf("the host's arp_ignore changed from %s to %s: the role touched the host", hostArpIgnore, got)
	}
	if got := strings.TrimSpace(c.MustRun("stat", "-c", "%a %U", "/etc/lbd/bgp-password")); got != "600 root" {
		t.Errorf("/etc/lbd/bgp-password: mode and owner %q, want 600 root", got)
	}
	if got := c.MustRun("cat", "/etc/lbd/bgp-password"); got != secret {
		t.Errorf("/etc/lbd/bgp-password holds %q", got)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the BGP password appears in the playbook's output:\n%s", out)
	}
	if !strings.Contains(c.MustRun("cat", "/etc/sysctl.d/60-lbd.conf"), "net.ipv4.conf.all.arp_announce=2") {
		t.Errorf("/etc/sysctl.d/60-lbd.conf lacks arp_announce")
	}
	st := lbdStatus(t, c)
	if st.Node != "node1" || st.LastReload.Result != "success" || len(st.Pools) != 1 || st.Pools[0].Size != 51 {
		t.Errorf("lbd status after the first run: %+v", st)
	}
	if got := strings.TrimSpace(c.MustRun("stat", "-c", "%a %U", "/etc/lbd/kubeconfig")); got != "600 root" {
		t.Errorf("/etc/lbd/kubeconfig: mode and owner %q, want 600 root", got)
	}
	cert := kubeconfigCert(t, c.MustRun("cat", "/etc/lbd/kubeconfig"))
	if cert.Subject.CommonName != "lbd:node:node1" || !slices.Equal(cert.Subject.Organization, []string{"lbd:nodes"}) ||
		time.Until(cert.NotAfter) < 364*24*time.Hour || time.Until(cert.NotAfter) > 366*24*time.Hour {
		t.Errorf("the node's identity: CN %q, O %q, expires %v", cert.Subject.CommonName, cert.Subject.Organization, cert.NotAfter)
	}
	if strings.Contains(out, "client-key-data") || strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("the identity's key appears in the playbook's output:\n%s", out)
	}
	file := c.MustRun("cat", "/etc/lbd.yaml")
	hash, pid := st.Config.Hash, mainPID(t, c)

	// 2. Second run: nothing to do.
	r, out, err = play()
	if err != nil || r.failed != 0 || r.changed != 0 {
		t.Fatalf("second run: %v, %+v, want changed=0\n%s", err, r, out)
	}
	t.Logf("second run: %+v", r)
	if got := mainPID(t, c); got != pid {
		t.Errorf("the second run restarted lbd (pid %d → %d)", pid, got)
	}

	// 3. A pool range lbd rejects: the play fails at validate; the file and
	// the running configuration stay.
	r, out, err = play("-e", `{"lbd_pools": [{"name": "default", "addresses": ["192.0.2.250-192.0.2.200"]}]}`)
	if err == nil || r.failed != 1 {
		t.Fatalf("run with a reversed range: err %v, %+v; want a failure\n%s", err, r, out)
	}
	for _, want := range []string{
		"TASK [lbd : Write the configuration, checked by lbd check",
		"failed to validate",
		`range start is after its end; did you mean 192.0.2.200-192.0.2.250?`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the failed run's output lacks %q:\n%s", want, out)
		}
	}
	if got := c.MustRun("cat", "/etc/lbd.yaml"); got != file {
		t.Errorf("/etc/lbd.yaml changed although validate failed:\n%s", got)
	}
	st = lbdStatus(t, c)
	if st.Config.Hash != hash || mainPID(t, c) != pid {
		t.Errorf("after the rejected run: hash %s (was %s), pid %d (was %d)", st.Config.Hash, hash, mainPID(t, c), pid)
	}
	if got := strings.TrimSpace(c.MustRun("systemctl", "is-active", "lbd")); got != "active" {
		t.Errorf("lbd after the rejected run: %s", got)
	}

	// 4. A valid change is applied by a reload: new hash, same process.
	// (lbd's file watcher may apply the new file before the handler's
	// `systemctl reload lbd`, which then finds it unchanged.)
	r, out, err = play("-e", `{"lbd_pools": [{"name": "default", "addresses": ["192.0.2.200-192.0.2.240"]}]}`)
	if err != nil || r.failed != 0 || r.changed == 0 {
		t.Fatalf("run with a smaller pool: %v, %+v\n%s", err, r, out)
	}
	if !strings.Contains(out, "RUNNING HANDLER [lbd : Reload lbd]") || strings.Contains(out, "RUNNING HANDLER [lbd : Restart lbd]") {
		t.Errorf("a configuration change must reload, not restart:\n%s", out)
	}
	st = lbdStatus(t, c)
	if st.Config.Hash == hash || (st.LastReload.Result != "success" && st.LastReload.Result != "unchanged") || len(st.Pools) != 1 || st.Pools[0].Size != 41 {
		t.Errorf("after the valid change: %+v (hash was %s)", st, hash)
	}
	if got := mainPID(t, c); got != pid {
		t.Errorf("the configuration change restarted lbd (pid %d → %d)", pid, got)
	}

	// 5. A certificate that expires within lbd_identity_renew_days is made
	// anew, and lbd restarted to read it.
	r, out, err = play("-e", `{"lbd_identity_renew_days": 400}`)
	if err != nil || r.failed != 0 || r.changed == 0 || !strings.Contains(out, "RUNNING HANDLER [lbd : Restart lbd]") {
		t.Fatalf("run that renews the identity: %v, %+v\n%s", err, r, out)
	}
	renewed := kubeconfigCert(t, c.MustRun("cat", "/etc/lbd/kubeconfig"))
	if renewed.SerialNumber.Cmp(cert.SerialNumber) == 0 || renewed.Subject.CommonName != "lbd:node:node1" {
		t.Errorf("renewed identity: serial %v (was %v), CN %q", renewed.SerialNumber, cert.SerialNumber, renewed.Subject.CommonName)
	}
	if got := mainPID(t, c); got == pid {
		t.Error("lbd was not restarted to read its new kubeconfig")
	}
}

// installCA makes the container a CA host, as a kubeadm control-plane node
// is: kubeadm (built by hack/kube-bins.sh), the cluster's CA in
// /etc/kubernetes/pki and a kubeadm configuration naming the API endpoint.
func installCA(t *testing.T, c *systemdtest.Container) {
	t.Helper()
	bins := os.Getenv("LBD_KUBE_BINDIR")
	kubeadm, err := os.ReadFile(filepath.Join(bins, "kubeadm"))
	if bins == "" || err != nil {
		if v := os.Getenv("LBD_REQUIRE_TOOLS"); v != "" && v != "0" {
			t.Fatalf("needs kubeadm from hack/kube-bins.sh in LBD_KUBE_BINDIR (%q): %v", bins, err)
		}
		t.Skipf("needs kubeadm from hack/kube-bins.sh in LBD_KUBE_BINDIR: %v", err)
	}
	c.WriteFile("/usr/local/bin/kubeadm", kubeadm, 0o755)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	c.WriteFile("/etc/kubernetes/pki/ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	c.WriteFile("/etc/kubernetes/pki/ca.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	c.WriteFile("/etc/kubernetes/kubeadm.yaml", []byte(`apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
controlPlaneEndpoint: 192.0.2.10:6443
certificatesDir: /etc/kubernetes/pki
`), 0o644)
}

// kubeconfigCert returns the client certificate in a kubeconfig.
func kubeconfigCert(t *testing.T, kubeconfig string) *x509.Certificate {
	t.Helper()
	var kc struct {
		Users []struct {
			User struct {
				Cert string `yaml:"client-certificate-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal([]byte(kubeconfig), &kc); err != nil || len(kc.Users) != 1 {
		t.Fatalf("kubeconfig: %v", err)
	}
	data, err := base64.StdEncoding.DecodeString(kc.Users[0].User.Cert)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no certificate in the kubeconfig")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// recap is the PLAY RECAP line of the one host.
type recap struct{ ok, changed, unreachable, failed int }

var recapRE = regexp.MustCompile(`node1\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

func parseRecap(t *testing.T, out string) recap {
	t.Helper()
	m := recapRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no PLAY RECAP for node1 in:\n%s", out)
	}
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	return recap{n(m[1]), n(m[2]), n(m[3]), n(m[4])}
}

// installNodeBasics gives the container what every Debian server has and
// the minimal image lacks: python3-apt (Ansible's apt module) and procps
// (sysctl, for the sysctl module). The container has no network, so the
// packages come from the host's APT sources (apt-get download) and go in
// with dpkg.
func installNodeBasics(t *testing.T, c *systemdtest.Container) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("apt-get", "download", "python3-apt", "python-apt-common", "distro-info-data", "procps", "libproc2-0")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	args := []string{"dpkg", "-i"}
	for _, d := range debs {
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		c.WriteFile("/var/cache/node-basics/"+filepath.Base(d), data, 0o644)
		args = append(args, "/var/cache/node-basics/"+filepath.Base(d))
	}
	c.MustRun(args...)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}
