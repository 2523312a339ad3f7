package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest configuration file Load reads.
const MaxFileSize = 4 << 20

// Options carries what Load needs from the machine. The zero value uses the
// real machine; tests substitute fakes.
type Options struct {
	// Hostname supplies node.name when the file leaves it out.
	Hostname func() (string, error)
	// Open opens the files the configuration names (password files, the
	// kubeconfig); default os.Open.
	Open func(name string) (fs.File, error)
	// Interfaces lists this machine's network interfaces, for the
	// warning about an interface that does not exist here; default the
	// kernel's list.
	Interfaces func() ([]string, error)
	// Offline skips every check of the machine itself (password files,
	// the kubeconfig, interfaces): for a CI or GitOps job that validates
	// a file away from the node. Config.Skipped says what was skipped.
	Offline bool
}

// Load reads, parses and validates the configuration file at path with the
// real machine's hostname and files. It is the one entry point used by both
// the daemon and `lbd check`.
//
// A file that was read but is invalid yields an error of type Errors listing
// every problem; any other error means the file could not be read.
func Load(path string) (*Config, error) { return Options{}.Load(path) }

// Load is the package-level Load with o's view of the machine.
func (o Options) Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return o.Parse(path, data)
}

// Parse parses and validates data as if read from file.
func (o Options) Parse(file string, data []byte) (*Config, error) {
	if o.Hostname == nil {
		o.Hostname = os.Hostname
	}
	if o.Open == nil {
		o.Open = func(name string) (fs.File, error) { return os.Open(name) }
	}
	if o.Interfaces == nil {
		o.Interfaces = systemInterfaces
	}
	v := newValidator(file)
	if len(data) > MaxFileSize {
		v.errorf("", "", "file is larger than %d bytes", MaxFileSize)
		return nil, v.result()
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			v.errorf("", "", "file is empty; start with 'version: 1' (see docs/config.md)")
		} else {
			v.syntaxError(err, data)
		}
		return nil, v.result()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		v.errorAt(&extra, "", "", "more than one YAML document ('---'); lbd reads exactly one")
	} else if !errors.Is(err, io.EOF) {
		v.syntaxError(err, data)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	c := &Config{Path: file}
	d := &decoder{v: v}
	d.decode(root, reflect.ValueOf(c).Elem(), "")
	if root.Kind != yaml.MappingNode {
		if len(v.errs) == 0 {
			v.errorAt(root, "", value(root), "want a mapping of keys at the top level (version: 1, pools: ...)")
		}
		return nil, v.result()
	}
	if v.structural {
		return nil, v.result()
	}
	applyDefaults(c, v, o)
	validate(c, v, o)
	if err := v.result(); err != nil {
		return nil, err
	}
	warn(c, v, o)
	c.Warnings, c.Skipped = v.warnings, v.skipped
	return c, nil
}

func systemInterfaces() ([]string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ifs))
	for i, f := range ifs {
		out[i] = f.Name
	}
	return out, nil
}

var (
	yamlLineRE   = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	yamlAnchorRE = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// syntaxError turns a YAML parser error into an Error placed where the
// problem is. The parser names the line of the enclosing block (or no
// line at all for an unknown alias), so the line is found again: it is
// the last line of the shortest prefix of the file that does not parse.
func (v *validator) syntaxError(err error, data []byte) {
	msg := err.Error()
	e := &Error{File: v.file, Msg: "YAML syntax: " + strings.TrimPrefix(msg, "yaml: ")}
	lines := strings.Split(string(data), "\n")
	switch m := yamlLineRE.FindStringSubmatch(msg); {
	case m != nil:
		e.Msg = "YAML syntax: " + m[2]
		e.Line, _ = strconv.Atoi(m[1])
		if l := firstBadLine(lines); l > 0 {
			e.Line = l
		}
		if e.Line <= len(lines) {
			e.Column = syntaxColumn(lines[e.Line-1], m[2])
		}
	default:
		if m := yamlAnchorRE.FindStringSubmatch(msg); m != nil {
			e.Line, e.Column = find(lines, "*"+m[1])
		}
	}
	v.errs = append(v.errs, e)
}

// firstBadLine returns the least n such that the first n lines do not
// parse (0 if they all do), by bisection: log2(lines) parses.
func firstBadLine(lines []string) int {
	parses := func(n int) bool {
		dec := yaml.NewDecoder(strings.NewReader(strings.Join(lines[:n], "\n")))
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); err != nil {
				return errors.Is(err, io.EOF)
			}
		}
	}
	if parses(len(lines)) {
		return 0
	}
	lo, hi := 0, len(lines) // parses(lo), !parses(hi)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if parses(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi
}

// syntaxColumn guesses the column of a syntax problem on line: the bracket
// left open, the tab, or else the first character of the line.
func syntaxColumn(line, problem string) int {
	open := func(o, c byte) int {
		depth := 0
		for i := len(line) - 1; i >= 0; i-- {
			switch line[i] {
			case c:
				depth++
			case o:
				if depth == 0 {
					return i + 1
				}
				depth--
			}
		}
		return 0
	}
	col := 0
	switch {
	case strings.Contains(problem, "']'"):
		col = open('[', ']')
	case strings.Contains(problem, "'}'"):
		col = open('{', '}')
	case strings.Contains(problem, "cannot start any token"):
		col = strings.IndexByte(line, '\t') + 1
	}
	if col == 0 {
		col = len(line) - len(strings.TrimLeft(line, " ")) + 1
	}
	return col
}

// find returns the line and column (from 1) of the first occurrence of s
// outside a comment, or 0, 0.
func find(lines []string, s string) (int, int) {
	for i, l := range lines {
		code, _, _ := strings.Cut(l, "#")
		if j := strings.Index(code, s); j >= 0 {
			return i + 1, j + 1
		}
	}
	return 0, 0
}

// Defaults, also documented in docs/config.md.
const (
	DefaultKubeconfig     = "/etc/lbd/kubeconfig"
	DefaultNamespace      = "lbd" // lbd's own: see etc/lbd-rbac.yaml
	DefaultCPNamespace    = "kube-system"
	DefaultAllocatorLease = "lbd-allocator"
	DefaultCPLease        = "lbd-cp"
	DefaultAPIPort        = 6443
	DefaultHTTP           = "127.0.0.1:7475"
	DefaultSocket         = "/run/lbd/lbd.sock"
	DefaultBGPPort        = 179
)

// applyDefaults fills every key the file left out. A key that was written,
// even as 0, keeps its value: validation then judges it.
func applyDefaults(c *Config, v *validator, o Options) {
	set := func(path string, field any, def any) {
		if _, written := v.pos[path]; written {
			return
		}
		reflect.ValueOf(field).Elem().Set(reflect.ValueOf(def))
	}
	if c.Node.Name == "" {
		if _, written := v.pos["node.name"]; !written {
			h, err := o.Hostname()
			if err != nil {
				v.errorf("node.name", "", "not set, and the hostname cannot be read (%v); set node.name to this node's Kubernetes Node name", err)
			}
			// kubelet registers the lower-cased hostname.
			c.Node.Name = strings.ToLower(h)
		}
	}
	k := &c.Kubernetes
	set("kubernetes.kubeconfig", &k.Kubeconfig, DefaultKubeconfig)
	set("kubernetes.namespace", &k.Namespace, DefaultNamespace)
	leaseDefaults(set, "kubernetes.allocator_lease", &k.AllocatorLease, DefaultAllocatorLease, k.Namespace,
		15*time.Second, 10*time.Second, 2*time.Second)
	set("kubernetes.liveness.duration", &k.Liveness.Duration, 2*time.Second)
	set("kubernetes.liveness.renew_interval", &k.Liveness.RenewInterval, 500*time.Millisecond)

	if cp := c.ControlPlane; cp != nil {
		set("control_plane.port", &cp.Port, uint16(DefaultAPIPort))
		set("control_plane.local_api_server", &cp.LocalAPIServer, fmt.Sprintf("https://127.0.0.1:%d", cp.Port))
		leaseDefaults(set, "control_plane.lease", &cp.Lease, DefaultCPLease, DefaultCPNamespace,
			2*time.Second, 1500*time.Millisecond, 400*time.Millisecond)
		set("control_plane.health.interval", &cp.Health.Interval, 500*time.Millisecond)
		set("control_plane.health.timeout", &cp.Health.Timeout, 400*time.Millisecond)
		set("control_plane.health.failure_threshold", &cp.Health.FailureThreshold, 3)
		gratuitousDefaults(set, "control_plane.gratuitous", &cp.Gratuitous, 10*time.Second)
	}
	gratuitousDefaults(set, "l2.gratuitous", &c.L2.Gratuitous, 0)
	set("l2.handover_grace", &c.L2.HandoverGrace, 2*time.Second)
	set("l2.exclude_interfaces", &c.L2.ExcludeInterfaces, slices.Clone(DefaultExcludeInterfaces))
	set("l2.conflict_probe.count", &c.L2.ConflictProbe.Count, 3)
	set("l2.conflict_probe.interval", &c.L2.ConflictProbe.Interval, 100*time.Millisecond)
	set("l2.conflict_probe.recheck", &c.L2.ConflictProbe.Recheck, 30*time.Second)

	if p := c.Peers; p != nil {
		set("peers.port", &p.Port, uint16(DefaultPeerPort))
		set("peers.probe_interval", &p.ProbeInterval, 150*time.Millisecond)
		set("peers.probe_timeout", &p.ProbeTimeout, 75*time.Millisecond)
		set("peers.heartbeat_interval", &p.HeartbeatInterval, 15*time.Second)
		set("peers.heartbeat_duration", &p.HeartbeatDuration, 45*time.Second)
		set("peers.fallback_after", &p.FallbackAfter, 3*time.Second)
	}
	for i := range c.BGP.Peers {
		p := &c.BGP.Peers[i]
		path := fmt.Sprintf("bgp.peers[%d]", i)
		set(path+".port", &p.Port, uint16(DefaultBGPPort))
		set(path+".hold_time", &p.HoldTime, 90*time.Second)
		set(path+".keepalive", &p.Keepalive, defaultKeepalive(p.HoldTime))
		set(path+".connect_retry", &p.ConnectRetry, 5*time.Second)
		set(path+".graceful_restart.restart_time", &p.GracefulRestart.RestartTime, 120*time.Second)
		if p.BFD != nil {
			set(path+".bfd.transmit_interval", &p.BFD.TransmitInterval, 300*time.Millisecond)
			set(path+".bfd.receive_interval", &p.BFD.ReceiveInterval, 300*time.Millisecond)
			set(path+".bfd.detect_multiplier", &p.BFD.DetectMultiplier, 3)
		}
	}
	for i := range c.BGP.Advertisements {
		a := &c.BGP.Advertisements[i]
		path := fmt.Sprintf("bgp.advertisements[%d]", i)
		set(path+".aggregation_length", &a.AggregationLength, 32)
		set(path+".aggregation_length_v6", &a.AggregationLengthV6, 128)
	}
	set("listen.http", &c.Listen.HTTP, DefaultHTTP)
	set("listen.socket", &c.Listen.Socket, DefaultSocket)
	set("log.level", &c.Log.Level, LogInfo)
	set("log.format", &c.Log.Format, LogAuto)
}

// defaultKeepalive is a third of the hold time in whole seconds, as BGP
// carries them, and at least 1s unless keepalives are off.
func defaultKeepalive(hold time.Duration) time.Duration {
	if hold <= 0 {
		return 0
	}
	return max((hold / 3).Truncate(time.Second), time.Second)
}

func leaseDefaults(set func(string, any, any), path string, l *Lease, name, ns string, d, r, p time.Duration) {
	set(path+".name", &l.Name, name)
	set(path+".namespace", &l.Namespace, ns)
	set(path+".duration", &l.Duration, d)
	set(path+".renew_deadline", &l.RenewDeadline, r)
	set(path+".retry_period", &l.RetryPeriod, p)
}

func gratuitousDefaults(set func(string, any, any), path string, g *Gratuitous, refresh time.Duration) {
	set(path+".count", &g.Count, 3)
	set(path+".interval", &g.Interval, time.Second)
	set(path+".refresh", &g.Refresh, refresh)
}

// Hash identifies a file's content, for the status view and logs.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

// Equal reports whether two configurations mean the same thing, whatever
// file they came from or how they were formatted.
func Equal(a, b *Config) bool {
	if a == nil || b == nil {
		return a == b
	}
	x, y := *a, *b
	x.Path, y.Path = "", ""
	x.Warnings, y.Warnings = nil, nil
	x.Skipped, y.Skipped = nil, nil
	return reflect.DeepEqual(x, y)
}

// Changed names the top-level sections (and node.name) whose meaning
// differs between a and b, in file order: what a reload would change.
func Changed(a, b *Config) []string {
	x, y := reflect.ValueOf(*a), reflect.ValueOf(*b)
	var out []string
	for i := range x.NumField() {
		tag := x.Type().Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		if !reflect.DeepEqual(x.Field(i).Interface(), y.Field(i).Interface()) {
			out = append(out, tag)
		}
	}
	return out
}

// lenient is the little that control commands read from a file without
// validating it: the daemon they talk to, or the VIP they clean up, must be
// found even when the file on disk is the broken one being rejected.
type lenient struct {
	Listen struct {
		Socket string `yaml:"socket"`
	} `yaml:"listen"`
	ControlPlane struct {
		Addresses []string `yaml:"addresses"`
		Interface string   `yaml:"interface"`
	} `yaml:"control_plane"`
}

// readLenient reads what it can of the file at path, ignoring every error.
func readLenient(path string) lenient {
	var l lenient
	if data, err := os.ReadFile(path); err == nil {
		_ = yaml.Unmarshal(data, &l)
	}
	return l
}

// SocketPath returns listen.socket from the file at path, read leniently,
// or the default.
func SocketPath(path string) string {
	if s := readLenient(path).Listen.Socket; s != "" {
		return s
	}
	return DefaultSocket
}

// VIPs returns control_plane.interface and the parseable
// control_plane.addresses from the file at path, read leniently: `lbd
// cleanup` must remove a VIP even when the file was broken after lbd
// started.
func VIPs(path string) (iface string, addrs []netip.Addr) {
	cp := readLenient(path).ControlPlane
	for _, s := range cp.Addresses {
		if a, err := netip.ParseAddr(s); err == nil {
			addrs = append(addrs, a)
		}
	}
	return cp.Interface, addrs
}
