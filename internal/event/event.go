// Package event names the classes of events lbd logs: the value of the
// `event` log attribute (Key). On journald each record with one carries
// LBD_EVENT=<class> and the class's fixed MESSAGE_ID, so `journalctl -u lbd
// LBD_EVENT=takeover` and `journalctl MESSAGE_ID=...` both find them.
// docs/operations.md lists the same table (a test keeps the two equal).
// Never change an ID once shipped: people filter and alert on them.
//
// Code logs a class with Attr, never a string literal (a test checks).
package event

import "log/slog"

// Class is an event class.
type Class string

// Key is the log attribute that carries the class.
const Key = "event"

// Attr is the log attribute for class c: log.Info(msg, event.Attr(event.Takeover), ...).
func Attr(c Class) slog.Attr { return slog.String(Key, string(c)) }

// The classes.
const (
	Takeover       Class = "takeover"         // this node took a VIP (control plane or L2 owner)
	Release        Class = "release"          // this node gave a VIP up
	Assigned       Class = "assigned"         // an address was assigned to a Service
	AssignFailed   Class = "assign_failed"    // a Service could not get an address
	SessionUp      Class = "session_up"       // a BGP session reached Established
	SessionDown    Class = "session_down"     // a BGP session left Established
	ConfigRejected Class = "config_rejected"  // a new configuration was refused; the old one stays
	ConfigApplied  Class = "config_applied"   // a new configuration is in force
	Conflict       Class = "conflict"         // another host answers for an address this node owns
	ConflictClear  Class = "conflict_cleared" // a conflict is over; the address is announced again
	Frozen         Class = "frozen"           // this node does not see its own liveness Lease renewed: it keeps its last plan
	Unfrozen       Class = "unfrozen"         // it sees its own liveness Lease again and plans again
	Leaving        Class = "leaving"          // lbd is stopping: it answers for its L2 addresses for the hand-over grace
	BFDUp          Class = "bfd_up"           // a BFD session with a BGP peer came up
	BFDDown        Class = "bfd_down"         // a BFD session with a BGP peer went down, with its diagnostic
	Fenced         Class = "fenced"           // this node sees half or fewer of the lbd nodes through its peers: it stops answering at L2
	PeerQuorum     Class = "peer_quorum"      // it sees more than half again and plans with its peers
	PeerFallback   Class = "peer_fallback"    // no majority of nodes sees each other without it: liveness from the Leases
	Silent         Class = "silent"           // back in a quorum but cut from the API: it tells its peers it does not answer at L2
)

// MessageIDs maps each class to its journald MESSAGE_ID (128 bits,
// lower-case hex, as `systemd-id128 new` prints).
var MessageIDs = map[Class]string{
	Takeover:       "19e9931e9eb54ab6b659e0c85270842c",
	Release:        "ae9ea6ac248d4fefaae9437749fb8597",
	Assigned:       "94f25791840f474e90d318b4be4283a5",
	AssignFailed:   "17c3cee57cb24d82a52088a4a759350e",
	SessionUp:      "86468ad2cf6244c892f6dd805d755c4d",
	SessionDown:    "ad83cdbedb1149048a4657efb0a05750",
	ConfigRejected: "f9706c7ccb2f497b9008a31f27fc6357",
	ConfigApplied:  "9c592e42edd44ff793a69d4dcfede899",
	Conflict:       "c2151e75433b48399c52e109a6dfd53b",
	ConflictClear:  "6bc244adb1134e90a5143a03e5077ac4",
	Frozen:         "4621d19127794be795eaba39cff8c167",
	Unfrozen:       "4cf23d52e30046409811ce56cda7db01",
	Leaving:        "7c5631b6f036447695b21f7457bda7d2",
	BFDUp:          "3fc9632761374ae285f7c601854c62ff",
	BFDDown:        "a28b30ae91f2413091a9cd79d28527c5",
	Fenced:         "0f815250f09a41ac8e0dfa80789222cc",
	PeerQuorum:     "fa154cf85d8d4d7eac240c8df13a57e4",
	PeerFallback:   "9ba379233fcf4610a2bcc670d2594104",
	Silent:         "5436a36f391e4058a06add4db748c9c1",
}
