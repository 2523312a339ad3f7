// Package bgp announces Service addresses to BGP routers with an embedded
// GoBGP v3 speaker: each route is a prefix (a /32 or /128, or the
// advertisement's aggregation length) with this node as next hop, so the
// router spreads traffic over every node that announces it (ECMP).
//
// A Speaker has the same shape as the announcers of package announce: the
// caller passes complete desired state and the Speaker reconciles. Apply
// takes the local AS, router ID and this node's peers, and touches only
// peers whose session settings changed; Set takes the complete set of
// routes and adds or withdraws only what changed, without resetting a
// session. Close withdraws every route first, waits briefly for the
// withdrawals to leave, then ends the sessions with a Cease NOTIFICATION.
//
// Graceful restart (RFC 4724): a Speaker always starts as a restarting
// speaker, so the router keeps the routes a previous lbd process announced
// (they are stale until this process sends End-of-RIB) and a restart does
// not remove them. GoBGP defers its first advertisement until every peer
// has sent End-of-RIB; routers send it right after the OPEN when they see
// the Restart bit, and the deferral timer is set to a few seconds so a
// silent peer cannot hold the others back.
//
// Routes restricted to some peers carry an internal large community per
// peer (global administrator 4294967295, reserved by RFC 7300), matched and
// stripped by each peer's export policy; routers never see it.
//
// The Speaker reports per-peer state (Status), logs each session change
// with event=session_up or session_down and a hint for the common stuck
// states, and exports lbd_bgp_* metrics. TCP MD5 passwords are read from
// their files and never logged, shown or exported.
//
// Set, Apply, Status and Close may be called from any goroutine; they are
// serialised. This package never imports k8s.io/...; it knows prefixes and
// peers, not Services.
package bgp
