package config

import (
	"net/netip"
	"regexp"
	"slices"
	"time"
)

// Version is the only schema version this build understands.
const Version = 1

// Config is one parsed and validated /etc/lbd.yaml. Values are immutable once
// Load returns them; a reload builds a new Config.
type Config struct {
	// Version of the schema; must be 1.
	Version int `yaml:"version"`

	Node         Node          `yaml:"node"`
	Kubernetes   Kubernetes    `yaml:"kubernetes"`
	ControlPlane *ControlPlane `yaml:"control_plane"`
	Pools        []Pool        `yaml:"pools"`
	L2           L2            `yaml:"l2"`
	BGP          BGP           `yaml:"bgp"`
	Peers        *Peers        `yaml:"peers"`
	Listen       Listen        `yaml:"listen"`
	Log          Log           `yaml:"log"`

	// Path is the file the configuration was read from (not a YAML key).
	Path string `yaml:"-"`
	// Warnings are what is legal but probably wrong (`lbd check` prints
	// them; --strict makes them errors). Not YAML keys.
	Warnings Errors `yaml:"-"`
	// Skipped names the checks of the machine that Options.Offline
	// skipped.
	Skipped []string `yaml:"-"`
}

// Node identifies the machine lbd runs on.
type Node struct {
	// Name must equal the Kubernetes Node name; default: the hostname.
	Name string `yaml:"name"`
}

// Kubernetes says how lbd reaches the API and which Services it serves.
type Kubernetes struct {
	Kubeconfig        string `yaml:"kubeconfig"`
	Namespace         string `yaml:"namespace"`
	LoadBalancerClass string `yaml:"load_balancer_class"`
	// AllocatorLease elects the one lbd in the cluster that assigns addresses.
	AllocatorLease Lease `yaml:"allocator_lease"`
	// Liveness is each node's own Lease that says its lbd is alive.
	Liveness Liveness `yaml:"liveness"`
}

// Lease holds client-go leader-election settings for one Lease.
type Lease struct {
	Name          string        `yaml:"name"`
	Namespace     string        `yaml:"namespace"`
	Duration      time.Duration `yaml:"duration"`
	RenewDeadline time.Duration `yaml:"renew_deadline"`
	RetryPeriod   time.Duration `yaml:"retry_period"`
}

// Liveness holds the per-node liveness Lease timings.
type Liveness struct {
	Duration      time.Duration `yaml:"duration"`
	RenewInterval time.Duration `yaml:"renew_interval"`
}

// ControlPlane configures the floating API server address. It is present
// only on control-plane nodes.
type ControlPlane struct {
	// Addresses holds the VIP: at most one IPv4 and one IPv6 address.
	Addresses []netip.Addr `yaml:"addresses"`
	Interface string       `yaml:"interface"`
	Port      uint16       `yaml:"port"`
	// LocalAPIServer is the URL of this node's own API server, used for
	// health checks and the election; never the VIP.
	LocalAPIServer string     `yaml:"local_api_server"`
	Lease          Lease      `yaml:"lease"`
	Health         Health     `yaml:"health"`
	Gratuitous     Gratuitous `yaml:"gratuitous"`
}

// Health configures the readiness poll of the local API server.
type Health struct {
	Interval         time.Duration `yaml:"interval"`
	Timeout          time.Duration `yaml:"timeout"`
	FailureThreshold int           `yaml:"failure_threshold"`
}

// Gratuitous configures the unsolicited ARP / NA sent when a node takes an
// address: Count packets Interval apart (the first at once), then one every
// Refresh (0: no refresh).
type Gratuitous struct {
	Count    int           `yaml:"count"`
	Interval time.Duration `yaml:"interval"`
	Refresh  time.Duration `yaml:"refresh"`
}

// Pool is a named set of addresses Services may get.
type Pool struct {
	Name       string  `yaml:"name"`
	Addresses  []Range `yaml:"addresses"`
	AutoAssign *bool   `yaml:"auto_assign"`
	// AvoidBuggyIPs skips IPv4 addresses ending in .0 or .255.
	AvoidBuggyIPs bool `yaml:"avoid_buggy_ips"`
	// Namespaces that may use the pool; empty means every namespace.
	Namespaces []string `yaml:"namespaces"`
	// Priority orders pools for automatic assignment: higher first, then
	// config order.
	Priority int `yaml:"priority"`
}

// Contains reports whether one of the pool's ranges holds a (of the same
// family).
func (p *Pool) Contains(a netip.Addr) bool {
	a = a.Unmap()
	return slices.ContainsFunc(p.Addresses, func(r Range) bool { return r.Contains(a) })
}

// poolRange finds the pool and range that hold a.
func (c *Config) poolRange(a netip.Addr) (pool *Pool, pi, ri int, ok bool) {
	if !a.IsValid() {
		return nil, 0, 0, false
	}
	for pi := range c.Pools {
		for ri, r := range c.Pools[pi].Addresses {
			if r.Contains(a.Unmap()) {
				return &c.Pools[pi], pi, ri, true
			}
		}
	}
	return nil, 0, 0, false
}

// PoolOf returns the pool that holds a, or nil. Pools never overlap (Load
// checks), so there is at most one.
func (c *Config) PoolOf(a netip.Addr) *Pool {
	for i := range c.Pools {
		if c.Pools[i].Contains(a) {
			return &c.Pools[i]
		}
	}
	return nil
}

// AutoAssignEnabled reports whether Services without a pool annotation may
// get addresses from p.
func (p Pool) AutoAssignEnabled() bool { return p.AutoAssign == nil || *p.AutoAssign }

// Peers turns on failure detection among the lbd nodes themselves (SWIM
// over UDP and TCP, encrypted under a shared key) instead of per-node
// Leases renewed twice a second: each node's Lease becomes a heartbeat at
// the kubelet's pace that carries its view of its peers, and L2 failover
// no longer waits on the API. Absent: liveness from the Leases alone.
type Peers struct {
	// KeyFile holds the shared key, base64 of 16, 24 or 32 random bytes
	// (`head -c 32 /dev/urandom | base64`), mode 0600; every node must
	// have the same.
	KeyFile string `yaml:"key_file"`
	// Address is the address this node binds and the others reach it
	// by; default the Node's InternalIP.
	Address netip.Addr `yaml:"address"`
	// Port is the UDP and TCP port, the same on every node.
	Port uint16 `yaml:"port"`
	// ProbeInterval and ProbeTimeout are SWIM's timings: each node probes
	// one peer per interval; a probe unanswered within the timeout goes
	// through other nodes before the peer is suspected.
	ProbeInterval time.Duration `yaml:"probe_interval"`
	ProbeTimeout  time.Duration `yaml:"probe_timeout"`
	// HeartbeatInterval and HeartbeatDuration time the node's Lease while
	// it is in a quorum of its peers; outside one it is renewed at
	// kubernetes.liveness's pace.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	HeartbeatDuration time.Duration `yaml:"heartbeat_duration"`
	// FallbackAfter is how long a node that sees fewer than half the lbd
	// nodes stays silent at L2 before it looks, in the Leases, whether
	// the others have a quorum without it (then it stays silent) or not
	// (the peer port is blocked, or most nodes died: it falls back to
	// liveness from the Leases).
	FallbackAfter time.Duration `yaml:"fallback_after"`
	// KeyFingerprint identifies the key read from KeyFile (not a YAML key).
	KeyFingerprint string `yaml:"-"`
}

// DefaultPeerPort is the peers' UDP and TCP port (memberlist's and
// MetalLB's).
const DefaultPeerPort = 7946

// L2 configures layer-2 (ARP/NDP) announcement of Service addresses.
type L2 struct {
	Advertisements []L2Advertisement `yaml:"advertisements"`
	Gratuitous     Gratuitous        `yaml:"gratuitous"`
	// ConflictDetection probes for another host using an address before
	// announcing it, and watches for foreign replies afterwards.
	ConflictDetection *bool `yaml:"conflict_detection"`
	// ConflictProbe times the probes of conflict detection.
	ConflictProbe ConflictProbe `yaml:"conflict_probe"`
	// Failback lets a node that returns take its addresses back.
	Failback bool `yaml:"failback"`
	// HandoverGrace is how long a node keeps answering for an address it
	// gives up on a planned hand-over (stop, cordon, exclude label,
	// failback), while the new owner takes it and sends its burst.
	HandoverGrace time.Duration `yaml:"handover_grace"`
	// ExcludeInterfaces are regular expressions (anchored) of interface
	// names an advertisement without interfaces never answers on: pod,
	// CNI and container links. Default DefaultExcludeInterfaces.
	ExcludeInterfaces []string `yaml:"exclude_interfaces"`
}

// DefaultExcludeInterfaces are the links of pods, CNIs, container
// runtimes and kube-proxy, where answering ARP/NDP for a Service address
// is wrong: MetalLB's default list, and the links of Cilium, Kube-router,
// WireGuard and the common tunnels.
var DefaultExcludeInterfaces = []string{
	"docker.*", "cbr.*", "dummy.*", "virbr.*", "lxcbr.*", "veth.*", "lo", "cali.*", "tunl.*",
	"flannel.*", "kube-ipvs.*", "cni.*", "nodelocaldns.*", "cilium_.*", "lxc.*", "vxlan.*",
	"genev.*", "kube-bridge", "wg.*", "weave.*", "tun.*", "tap.*",
}

// Excluded reports whether the interface name matches l.ExcludeInterfaces.
func (l L2) Excluded(name string) bool {
	for _, p := range l.ExcludeInterfaces {
		if re, err := regexp.Compile("^(?:" + p + ")$"); err == nil && re.MatchString(name) {
			return true
		}
	}
	return false
}

// ConflictDetectionEnabled reports whether address conflicts are probed.
func (l L2) ConflictDetectionEnabled() bool {
	return l.ConflictDetection == nil || *l.ConflictDetection
}

// ConflictProbe times address conflict detection: Count probes Interval
// apart before an address is first announced (an address is announced
// Count × Interval after it is taken, when nothing answers), and, for an
// address in conflict, a new probe after Recheck without a foreign packet.
type ConflictProbe struct {
	Count    int           `yaml:"count"`
	Interval time.Duration `yaml:"interval"`
	Recheck  time.Duration `yaml:"recheck"`
}

// L2Advertisement announces pools by ARP/NDP on some interfaces of some nodes.
type L2Advertisement struct {
	Name  string   `yaml:"name"`
	Pools []string `yaml:"pools"`
	// Interfaces to answer on; empty means every interface that is up and
	// not loopback.
	Interfaces   []string  `yaml:"interfaces"`
	NodeSelector *Selector `yaml:"node_selector"`
}

// BGP configures the embedded BGP speaker.
type BGP struct {
	ASN            uint32             `yaml:"asn"`
	RouterID       netip.Addr         `yaml:"router_id"`
	Peers          []Peer             `yaml:"peers"`
	Advertisements []BGPAdvertisement `yaml:"advertisements"`
}

// Peer is one BGP neighbour, usually the top-of-rack router.
type Peer struct {
	Name          string        `yaml:"name"`
	Address       netip.Addr    `yaml:"address"`
	ASN           uint32        `yaml:"asn"`
	Port          uint16        `yaml:"port"`
	HoldTime      time.Duration `yaml:"hold_time"`
	Keepalive     time.Duration `yaml:"keepalive"`
	ConnectRetry  time.Duration `yaml:"connect_retry"`
	SourceAddress netip.Addr    `yaml:"source_address"`
	// EBGPMultihop is the TTL for eBGP sessions to a peer that is not
	// directly connected; 0 means directly connected.
	EBGPMultihop int `yaml:"ebgp_multihop"`
	// PasswordFile holds the TCP MD5 password; it must not be readable by
	// group or others. The password itself is never in the YAML.
	PasswordFile    string          `yaml:"password_file"`
	GracefulRestart GracefulRestart `yaml:"graceful_restart"`
	NodeSelector    *Selector       `yaml:"node_selector"`
	// BFD runs a BFD session (RFC 5880/5881) with the peer; nil: none.
	BFD *BFD `yaml:"bfd"`

	// PasswordFingerprint identifies the password in PasswordFile when
	// the file was read (Fingerprint; not a YAML key): a reload after the
	// password changed is a change, and `lbd status` can show which
	// password is in use without showing it.
	PasswordFingerprint string `yaml:"-"`
}

// BFD is a peer's BFD session: its timers (docs/bgp.md, "BFD").
type BFD struct {
	// TransmitInterval is how often lbd would like to send.
	TransmitInterval time.Duration `yaml:"transmit_interval"`
	// ReceiveInterval is how often lbd can take packets.
	ReceiveInterval time.Duration `yaml:"receive_interval"`
	// DetectMultiplier: the router declares lbd down after this many of
	// its intervals without a packet.
	DetectMultiplier int `yaml:"detect_multiplier"`
}

// GracefulRestart configures BGP graceful restart (RFC 4724) for a peer.
type GracefulRestart struct {
	Enabled     *bool         `yaml:"enabled"`
	RestartTime time.Duration `yaml:"restart_time"`
}

// IsEnabled reports whether graceful restart is negotiated (default on).
func (g GracefulRestart) IsEnabled() bool { return g.Enabled == nil || *g.Enabled }

// BGPAdvertisement announces pools as routes to some peers from some nodes.
type BGPAdvertisement struct {
	Name  string   `yaml:"name"`
	Pools []string `yaml:"pools"`
	// AggregationLength and AggregationLengthV6 set the prefix length of
	// the advertised routes (default 32 and 128: one route per address).
	AggregationLength   int              `yaml:"aggregation_length"`
	AggregationLengthV6 int              `yaml:"aggregation_length_v6"`
	LocalPreference     *uint32          `yaml:"local_preference"`
	Communities         []Community      `yaml:"communities"`
	LargeCommunities    []LargeCommunity `yaml:"large_communities"`
	// Peers restricts the advertisement to these peers; empty means all.
	Peers        []string  `yaml:"peers"`
	NodeSelector *Selector `yaml:"node_selector"`
}

// Listen configures the local endpoints of the daemon.
type Listen struct {
	// HTTP serves /metrics, /livez and /readyz.
	HTTP string `yaml:"http"`
	// Socket is the control socket used by lbd reload and lbd status.
	Socket string `yaml:"socket"`
}

// Log configures logging.
type Log struct {
	Level  LogLevel  `yaml:"level"`
	Format LogFormat `yaml:"format"`
}
