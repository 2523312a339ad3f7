// Package status is what `lbd status` shows: the values the daemon and
// each subsystem fill in (the control socket sends them as JSON), and their
// text form. It imports nothing of lbd's, so every subsystem can report
// its own part.
package status

import (
	"context"
	"time"
)

// Reporter is a subsystem that fills its part of the status. Report must
// not block for long: ctx is the status request's.
type Reporter interface {
	Report(ctx context.Context, st *Status)
}

// Status is the daemon's view of itself, for `lbd status`: the daemon
// fills its own part, each subsystem its own (Reporter).
type Status struct {
	Version    string    `json:"version"`
	Node       string    `json:"node"`
	PID        int       `json:"pid"`
	Started    time.Time `json:"started"`
	Config     Config    `json:"config"`
	LastReload Reload    `json:"last_reload"`
	// Kubernetes is the state of the API connection.
	Kubernetes string `json:"kubernetes"`
	// Allocator says whether this node assigns addresses.
	Allocator string `json:"allocator"`
	// Pools is each pool's size and, on the allocator, use.
	Pools []Pool `json:"pools,omitempty"`
	// Agent says what the node agent is doing (planning, frozen, ...).
	Agent string `json:"agent,omitempty"`
	// Peers is this node's standing among its peers (with a peers
	// section): quorum, minority or fallback, and why.
	Peers *Peers `json:"peers,omitempty"`
	// Addresses holds this node's decision for every Service address.
	Addresses []Address `json:"addresses,omitempty"`
	// ControlPlane is the control-plane VIP election; absent on nodes
	// without a control_plane section.
	ControlPlane *ControlPlane `json:"control_plane,omitempty"`
	// BGP is the embedded speaker's state; nil when this node has no
	// BGP peers.
	BGP *BGP `json:"bgp,omitempty"`
}

// Peers is the peer detector in the status view.
type Peers struct {
	State string   `json:"state"`
	Alive []string `json:"alive"`
	Known int      `json:"known"`
	Why   string   `json:"why"`
}

// BGP is the BGP speaker in the status view.
type BGP struct {
	ASN      uint32    `json:"asn"`
	RouterID string    `json:"router_id"`
	Routes   int       `json:"routes"`
	Peers    []BGPPeer `json:"peers"`
}

// BGPPeer is one BGP session. It never holds the password.
type BGPPeer struct {
	Name        string    `json:"name"`
	Address     string    `json:"address"`
	ASN         uint32    `json:"asn"`
	State       string    `json:"state"`
	Since       time.Time `json:"since"`
	Uptime      string    `json:"uptime,omitempty"`
	Advertised  uint64    `json:"advertised_prefixes"`
	UpdatesSent uint64    `json:"updates_sent"`
	Problem     string    `json:"problem,omitempty"`
	// PasswordFingerprint identifies the TCP MD5 password in use, never
	// the password itself.
	PasswordFingerprint string `json:"password_fingerprint,omitempty"`
	// BFD is the peer's BFD session; nil without one.
	BFD *BFD `json:"bfd,omitempty"`
}

// BFD is one BFD session.
type BFD struct {
	State       string `json:"state"`
	RemoteState string `json:"remote_state"`
	// TxInterval is the negotiated interval between lbd's packets;
	// DetectTime how long the router may be silent.
	TxInterval string    `json:"tx_interval"`
	DetectTime string    `json:"detect_time"`
	Since      time.Time `json:"since"`
	// LastDownDiag is why the session last went down.
	LastDownDiag string `json:"last_down_diag,omitempty"`
}

// Address is this node's decision for one Service address in one
// mode: whether it announces it, who owns it, and why.
type Address struct {
	Service    string   `json:"service"`
	IP         string   `json:"ip"`
	Mode       string   `json:"mode"`            // l2, bgp or none
	Owner      string   `json:"owner,omitempty"` // l2: the node that announces it
	Announcing bool     `json:"announcing"`
	Reason     string   `json:"reason"`
	Interfaces []string `json:"interfaces,omitempty"`
}

// ControlPlane is the control-plane VIP as this node sees it.
type ControlPlane struct {
	VIP       []string `json:"vip"`
	Interface string   `json:"interface"`
	// Holder is the node the Lease names ("" when free or unknown).
	Holder string `json:"holder"`
	// Leading says whether this node holds the VIP; State says what it
	// does, in words.
	Leading bool   `json:"leading"`
	State   string `json:"state"`
	// LocalAPIReady is the readiness gate on the local API server;
	// LocalAPIDetail says why it is not ready.
	LocalAPIServer string `json:"local_api_server"`
	LocalAPIReady  bool   `json:"local_api_ready"`
	LocalAPIDetail string `json:"local_api_detail,omitempty"`
}

// Pool is one pool and family in the status view.
type Pool struct {
	Pool   string `json:"pool"`
	Family string `json:"family"`
	Size   uint64 `json:"size"`
	// Used is known on the allocator holder only.
	Used *uint64 `json:"used,omitempty"`
}

// Config describes the configuration in force.
type Config struct {
	File    string `json:"file"`
	Hash    string `json:"hash"`
	Summary string `json:"summary"`
}

// Reload describes the latest reload attempt.
type Reload struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	Result string    `json:"result"`
	Error  string    `json:"error,omitempty"`
}
