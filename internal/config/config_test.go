package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// testOptions sees a machine called "testnode" with two password files.
var testOptions = Options{
	Hostname:   func() (string, error) { return "TestNode", nil },
	Open:       testFiles.open,
	Interfaces: func() ([]string, error) { return []string{"lo", "eth0", "eth1", "bond0.40"}, nil },
}

// testFiles are the files the test machine has.
var testFiles = files{
	"etc/lbd/bgp-password":  {Data: []byte("s3cret-of-12\n"), Mode: 0o600},
	"etc/lbd/open-password": {Data: []byte("s3cret-of-12\n"), Mode: 0o644},
	"etc/lbd/kubeconfig":    {Data: []byte("apiVersion: v1\n"), Mode: 0o600},
}

// files is an in-memory file system opened by absolute path.
type files fstest.MapFS

func (f files) open(name string) (fs.File, error) {
	file, err := fstest.MapFS(f).Open(strings.TrimPrefix(name, "/"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT} // as the real machine says it
	}
	return file, err
}

func TestGoodConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.good.yaml")
	files = append(files, "../../etc/lbd.yaml")
	if len(files) < 4 {
		t.Fatalf("found only %d good fixtures", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := testOptions.Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.Path != f || c.Version != 1 || c.Node.Name == "" {
				t.Errorf("Load returned %+v", c)
			}
		})
	}
}

// TestBadConfigs loads every testdata/bad fixture. Each starts with one
// "# error: TEXT" line per expected problem; Load must report exactly that
// many problems, each naming the file, and each TEXT must appear in its
// own problem (one problem matches one TEXT).
func TestBadConfigs(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.bad.yaml")
	if len(files) < 40 {
		t.Fatalf("found only %d bad fixtures, want at least 40", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".bad.yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for line := range strings.SplitSeq(string(data), "\n") {
				if s, ok := strings.CutPrefix(line, "# error: "); ok {
					want = append(want, s)
				}
			}
			if len(want) == 0 {
				t.Fatal("fixture has no '# error:' line")
			}
			_, err = testOptions.Load(f)
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load error = %v (%T), want Errors", err, err)
			}
			used := make([]bool, len(errs))
			for _, w := range want {
				found := false
				for i, e := range errs {
					if !used[i] && strings.Contains(e.Error(), w) {
						used[i], found = true, true
						break
					}
				}
				if !found {
					t.Errorf("no problem of its own contains %q", w)
				}
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.Error(), f+":") {
					t.Errorf("problem does not start with the file name: %s", e)
				}
			}
			if len(errs) != len(want) {
				t.Errorf("got %d errors, want %d", len(errs), len(want))
			}
			if t.Failed() {
				t.Logf("errors:\n%v", err)
			}
		})
	}
}

// TestWarnings loads every testdata/warn fixture: it must be valid, and
// each "# warning: TEXT" line must match a warning of its own, with no
// other warning. The good fixtures have none.
func TestWarnings(t *testing.T) {
	files, _ := filepath.Glob("testdata/warn/*.warn.yaml")
	if len(files) < 5 {
		t.Fatalf("found only %d warning fixtures", len(files))
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".warn.yaml"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for line := range strings.SplitSeq(string(data), "\n") {
				if s, ok := strings.CutPrefix(line, "# warning: "); ok {
					want = append(want, s)
				}
			}
			c, err := testOptions.Load(f)
			if err != nil {
				t.Fatalf("a file with warnings only must load: %v", err)
			}
			used := make([]bool, len(c.Warnings))
			for _, w := range want {
				found := false
				for i, e := range c.Warnings {
					if !used[i] && strings.Contains(e.Error(), w) {
						used[i], found = true, true
						break
					}
				}
				if !found {
					t.Errorf("no warning of its own contains %q", w)
				}
			}
			if len(c.Warnings) != len(want) {
				t.Errorf("got %d warnings, want %d", len(c.Warnings), len(want))
			}
			if t.Failed() {
				t.Logf("warnings:\n%v", c.Warnings)
			}
		})
	}
	good, _ := filepath.Glob("testdata/good/*.good.yaml")
	for _, f := range good {
		if c, err := testOptions.Load(f); err == nil && len(c.Warnings) > 0 {
			t.Errorf("%s: warnings %v", f, c.Warnings)
		}
	}
}

// TestOffline: Offline skips the machine's checks and says so; the file's
// own rules still apply.
func TestOffline(t *testing.T) {
	o := Options{Offline: true, Hostname: testOptions.Hostname,
		Open:       func(string) (fs.File, error) { panic("Offline must not open files") },
		Interfaces: func() ([]string, error) { panic("Offline must not list interfaces") },
	}
	c, err := o.Parse("c.yaml", []byte(peerWithPassword("/etc/lbd/nowhere")))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Skipped) != 3 || len(c.Warnings) != 0 {
		t.Errorf("skipped %q, warnings %v", c.Skipped, c.Warnings)
	}
	if _, err := o.Parse("c.yaml", []byte(peerWithPassword("relative"))); err == nil {
		t.Error("Offline accepted a relative password file")
	}
}

func TestErrorsNameFileLineField(t *testing.T) {
	_, err := testOptions.Parse("/etc/lbd.yaml", []byte("version: 1\nlog:\n  level: loud\n"))
	want := `/etc/lbd.yaml:3:10: log.level "loud": unknown log level; use debug, info, warn or error`
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestEmptyAndUnreadable(t *testing.T) {
	var errs Errors
	if _, err := testOptions.Parse("x.yaml", nil); !errors.As(err, &errs) || !strings.Contains(err.Error(), "file is empty") {
		t.Errorf("empty file: %v", err)
	}
	_, err := testOptions.Load(filepath.Join(t.TempDir(), "absent.yaml"))
	if err == nil || errors.As(err, &errs) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want a plain not-exist error", err)
	}
	big := make([]byte, MaxFileSize+1)
	if _, err := testOptions.Parse("big.yaml", big); !errors.As(err, &errs) {
		t.Errorf("oversized file: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	c, err := testOptions.Parse("d.yaml", []byte(`version: 1
control_plane:
  addresses: [198.51.100.10]
  interface: eth0
  port: 8443
pools:
  - name: p
    addresses: [192.0.2.0/28]
bgp:
  asn: 64512
  peers:
    - {name: a, address: 198.51.100.1, asn: 64501}
    - {name: b, address: 198.51.100.2, asn: 64501, hold_time: 9s}
    - {name: c, address: 198.51.100.3, asn: 64501, hold_time: 0s}
  advertisements:
    - {name: x, pools: [p]}
`))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"node name is the lower-cased hostname", c.Node.Name, "testnode"},
		{"kubeconfig", c.Kubernetes.Kubeconfig, DefaultKubeconfig},
		{"namespace", c.Kubernetes.Namespace, "lbd"},
		{"allocator lease", c.Kubernetes.AllocatorLease.Name, "lbd-allocator"},
		{"allocator lease namespace follows kubernetes.namespace", c.Kubernetes.AllocatorLease.Namespace, "lbd"},
		{"local API server follows the port", c.ControlPlane.LocalAPIServer, "https://127.0.0.1:8443"},
		{"cp lease", c.ControlPlane.Lease.Name, "lbd-cp"},
		{"cp lease duration", c.ControlPlane.Lease.Duration, 2 * time.Second},
		{"cp refresh", c.ControlPlane.Gratuitous.Refresh, 10 * time.Second},
		{"l2 refresh", c.L2.Gratuitous.Refresh, time.Duration(0)},
		{"auto assign", c.Pools[0].AutoAssignEnabled(), true},
		{"conflict detection", c.L2.ConflictDetectionEnabled(), true},
		{"conflict probe", c.L2.ConflictProbe, ConflictProbe{Count: 3, Interval: 100 * time.Millisecond, Recheck: 30 * time.Second}},
		{"peer port", c.BGP.Peers[0].Port, uint16(179)},
		{"hold", c.BGP.Peers[0].HoldTime, 90 * time.Second},
		{"keepalive", c.BGP.Peers[0].Keepalive, 30 * time.Second},
		{"keepalive follows a written hold time", c.BGP.Peers[1].Keepalive, 3 * time.Second},
		{"hold 0 written stays 0", c.BGP.Peers[2].HoldTime, time.Duration(0)},
		{"keepalive for hold 0", c.BGP.Peers[2].Keepalive, time.Duration(0)},
		{"graceful restart", c.BGP.Peers[0].GracefulRestart.IsEnabled(), true},
		{"aggregation", c.BGP.Advertisements[0].AggregationLength, 32},
		{"aggregation v6", c.BGP.Advertisements[0].AggregationLengthV6, 128},
		{"http", c.Listen.HTTP, "127.0.0.1:7475"},
		{"socket", c.Listen.Socket, "/run/lbd/lbd.sock"},
		{"log", c.Log.Level, LogInfo},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		in       string
		from, to string
		size     uint64
	}{
		{"192.0.2.0/24", "192.0.2.0", "192.0.2.255", 256},
		{"192.0.2.10 - 192.0.2.20", "192.0.2.10", "192.0.2.20", 11},
		{"192.0.2.7", "192.0.2.7", "192.0.2.7", 1},
		{"2001:db8::/64", "2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", ^uint64(0)},
		{"2001:db8::/65", "2001:db8::", "2001:db8::7fff:ffff:ffff:ffff", 1 << 63},
		{"2001:db8::/32", "2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", ^uint64(0)},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if r.From != netip.MustParseAddr(tt.from) || r.To != netip.MustParseAddr(tt.to) {
			t.Errorf("%s: got %s-%s", tt.in, r.From, r.To)
		}
		if r.Size() != tt.size {
			t.Errorf("%s: size %d, want %d", tt.in, r.Size(), tt.size)
		}
	}
}

func mustRange(t *testing.T, s string) Range {
	t.Helper()
	r, err := ParseRange(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRangePrefixes(t *testing.T) {
	tests := map[string]string{
		"192.0.2.0/24":                  "192.0.2.0/24",
		"192.0.2.7":                     "192.0.2.7/32",
		"192.168.40.200-192.168.40.250": "192.168.40.200/29 192.168.40.208/28 192.168.40.224/28 192.168.40.240/29 192.168.40.248/31 192.168.40.250/32",
		"0.0.0.0-255.255.255.255":       "0.0.0.0/0",
		"2001:db8::ffff-2001:db8::1:0":  "2001:db8::ffff/128 2001:db8::1:0/128",
	}
	for in, want := range tests {
		var got []string
		for _, p := range mustRange(t, in).Prefixes() {
			got = append(got, p.String())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: got %v, want %s", in, got, want)
		}
	}
}

func TestCommunities(t *testing.T) {
	var c Community
	if err := c.UnmarshalText([]byte("64512:100")); err != nil || c != 64512<<16|100 || c.String() != "64512:100" {
		t.Errorf("64512:100 → %v, %v", uint32(c), err)
	}
	if err := c.UnmarshalText([]byte("NO-EXPORT")); err != nil || c != 0xFFFFFF01 {
		t.Errorf("no-export → %x, %v", uint32(c), err)
	}
	var l LargeCommunity
	if err := l.UnmarshalText([]byte("4200000001:1:4294967295")); err != nil || l.String() != "4200000001:1:4294967295" {
		t.Errorf("large → %v, %v", l, err)
	}
}

func TestSelectorMatches(t *testing.T) {
	s := &Selector{
		MatchLabels: map[string]string{"rack": "r1"},
		MatchExpressions: []Requirement{
			{Key: "zone", Operator: OpIn, Values: []string{"a", "b"}},
			{Key: "maint", Operator: OpDoesNotExist},
			{Key: "tier", Operator: OpNotIn, Values: []string{"edge"}},
			{Key: "bgp", Operator: OpExists},
		},
	}
	tests := []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{"rack": "r1", "zone": "a", "bgp": ""}, true},
		{map[string]string{"rack": "r1", "zone": "b", "bgp": "", "tier": "core"}, true},
		{map[string]string{"rack": "r2", "zone": "a", "bgp": ""}, false},
		{map[string]string{"rack": "r1", "zone": "c", "bgp": ""}, false},
		{map[string]string{"rack": "r1", "zone": "a", "bgp": "", "maint": "yes"}, false},
		{map[string]string{"rack": "r1", "zone": "a", "bgp": "", "tier": "edge"}, false},
		{map[string]string{"rack": "r1", "zone": "a"}, false},
	}
	for i, tt := range tests {
		if got := s.Matches(tt.labels); got != tt.want {
			t.Errorf("case %d %v: got %v", i, tt.labels, got)
		}
	}
	var none *Selector
	if !none.Matches(nil) {
		t.Error("a nil selector must match every node")
	}
}

func TestEqual(t *testing.T) {
	a, err := testOptions.Parse("a.yaml", []byte("version: 1\nlog: {level: info}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := testOptions.Parse("b.yaml", []byte("# reformatted\nversion: 1\nlog:\n  level: info\n  format: auto\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := testOptions.Parse("a.yaml", []byte("version: 1\nlog: {level: debug}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(a, b) {
		t.Error("the same settings written differently must be Equal")
	}
	if Equal(a, c) {
		t.Error("different log levels must not be Equal")
	}
}

func TestSummary(t *testing.T) {
	c, err := testOptions.Load("../../etc/lbd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := "node testnode; control-plane VIP 192.168.40.10 on eth0; 1 pool (51 IPv4 addresses); 1 L2 advertisement; BGP AS64512 with 1 peer"
	if got := c.Summary(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestAliasBomb feeds a billion-laughs document.
func TestAliasBomb(t *testing.T) {
	doc := "version: 1\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for i := range 8 {
		name := string(rune('b' + i))
		doc += name + ": &" + name + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = name
	}
	doc += "pools: *" + prev + "\n"
	// The schema never nests lists in lists, so an alias of lists of
	// lists stops at the first level with one error per element: the
	// 10^9-node expansion is never walked.
	_, err := testOptions.Parse("bomb.yaml", []byte(doc))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) > 30 {
		t.Fatalf("got %d errors: %v", len(errs), err)
	}
}

// BenchmarkLoadExample measures Load on the shipped example, the work
// `lbd check` does besides starting the process.
func BenchmarkLoadExample(b *testing.B) {
	data, err := os.ReadFile("../../etc/lbd.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := testOptions.Parse("lbd.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
