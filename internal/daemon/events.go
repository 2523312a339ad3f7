package daemon

// Event classes: the value of the `event` log attribute. On journald each
// record with one of these carries LBD_EVENT=<class> and the class's fixed
// MESSAGE_ID, so `journalctl -u lbd LBD_EVENT=takeover` and
// `journalctl MESSAGE_ID=...` both find them. docs/operations.md lists the
// same table (a test keeps the two equal). Never change an ID once shipped:
// people filter and alert on them.
const (
	EventTakeover       = "takeover"         // this node took a VIP (control plane or L2 owner)
	EventRelease        = "release"          // this node gave a VIP up
	EventAssigned       = "assigned"         // an address was assigned to a Service
	EventAssignFailed   = "assign_failed"    // a Service could not get an address
	EventSessionUp      = "session_up"       // a BGP session reached Established
	EventSessionDown    = "session_down"     // a BGP session left Established
	EventConfigRejected = "config_rejected"  // a new configuration was refused; the old one stays
	EventConfigApplied  = "config_applied"   // a new configuration is in force
	EventConflict       = "conflict"         // another host answers for an address this node owns
	EventConflictClear  = "conflict_cleared" // a conflict is over; the address is announced again
	EventFrozen         = "frozen"           // this node does not see its own liveness Lease renewed: it keeps its last plan
	EventUnfrozen       = "unfrozen"         // it sees its own liveness Lease again and plans again
	EventLeaving        = "leaving"          // lbd is stopping: it answers for its L2 addresses for the hand-over grace
)

// MessageIDs maps each event class to its journald MESSAGE_ID (128 bits,
// lower-case hex, as `systemd-id128 new` prints).
var MessageIDs = map[string]string{
	EventTakeover:       "19e9931e9eb54ab6b659e0c85270842c",
	EventRelease:        "ae9ea6ac248d4fefaae9437749fb8597",
	EventAssigned:       "94f25791840f474e90d318b4be4283a5",
	EventAssignFailed:   "17c3cee57cb24d82a52088a4a759350e",
	EventSessionUp:      "86468ad2cf6244c892f6dd805d755c4d",
	EventSessionDown:    "ad83cdbedb1149048a4657efb0a05750",
	EventConfigRejected: "f9706c7ccb2f497b9008a31f27fc6357",
	EventConfigApplied:  "9c592e42edd44ff793a69d4dcfede899",
	EventConflict:       "c2151e75433b48399c52e109a6dfd53b",
	EventConflictClear:  "6bc244adb1134e90a5143a03e5077ac4",
	EventFrozen:         "4621d19127794be795eaba39cff8c167",
	EventUnfrozen:       "4cf23d52e30046409811ce56cda7db01",
	EventLeaving:        "7c5631b6f036447695b21f7457bda7d2",
}
