package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lbdproject/lbd/internal/event"
	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// peerStates is what the Speaker knows about each session from GoBGP's
// events and logs. It has its own lock: GoBGP's goroutines write to it.
type peerStates struct {
	mu sync.Mutex
	m  map[netip.Addr]*peerState
	// global is the local AS and router ID, for probes.
	global globalKey
	// probes are the probeOpen goroutines running; Close waits for them.
	probes sync.WaitGroup
}

type peerState struct {
	name    string
	state   string // GoBGP's session state, lower case: idle, active, opensent, ..., established
	up      bool
	since   time.Time // when the session came up (up) or went down
	changes uint64    // state changes, for lbd_bgp_session_state_changes_total
	// problem is the last reason the session failed or did not come
	// up, with a hint; logged once per change.
	problem string
	logged  string
	// w and password are the session's settings, for probeOpen.
	w         session
	password  string
	lastProbe time.Time
}

func newPeerStates() *peerStates { return &peerStates{m: map[netip.Addr]*peerState{}} }

func (p *peerStates) configure(g globalKey, w session, password string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.global = g
	st, ok := p.m[w.addr]
	if !ok {
		st = &peerState{state: "idle", since: time.Now()}
		p.m[w.addr] = st
	}
	st.name, st.w, st.password = w.name, w, password
}

func (p *peerStates) forget(addr netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, addr)
}

// watch follows GoBGP's peer state events until ctx ends.
func (s *Speaker) watch(ctx context.Context) error {
	started := make(chan struct{})
	s.watchWG.Add(1)
	var err error
	go func() {
		defer s.watchWG.Done()
		err = s.srv.WatchEvent(ctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, func(r *api.WatchEventResponse) {
			pe := r.GetPeer()
			if pe == nil || pe.Type != api.WatchEventResponse_PeerEvent_STATE {
				return
			}
			addr, perr := netip.ParseAddr(pe.Peer.GetState().GetNeighborAddress())
			if perr != nil {
				return
			}
			s.states.transition(s.log, addr.Unmap(), pe.Peer.GetState().GetSessionState())
		})
		close(started)
		if err == nil {
			<-ctx.Done()
		}
	}()
	<-started
	return err
}

func stateName(st api.PeerState_SessionState) string {
	return strings.ToLower(st.String())
}

// transition records a state change and logs session_up / session_down.
func (p *peerStates) transition(log *slog.Logger, addr netip.Addr, st api.PeerState_SessionState) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps, ok := p.m[addr]
	if !ok {
		return // a peer being removed
	}
	name := stateName(st)
	if name == ps.state {
		return
	}
	ps.changes++
	prev := ps.state
	ps.state = name
	switch {
	case st == api.PeerState_ESTABLISHED:
		ps.up, ps.since = true, time.Now()
		ps.problem, ps.logged = "", ""
		log.Info("bgp session established", event.Attr(event.SessionUp), "peer", ps.name, "ip", addr)
	case prev == "established":
		ps.up, ps.since = false, time.Now()
		log.Warn("bgp session lost", event.Attr(event.SessionDown), "peer", ps.name, "ip", addr, "reason", orNone(ps.problem))
		ps.logged = ps.problem
	case st == api.PeerState_IDLE && (prev == "opensent" || prev == "openconfirm"):
		// An attempt that got as far as OPEN and failed: say why once.
		if ps.problem == "" || ps.problem == refusedOpen {
			ps.problem = refusedOpen
			if time.Since(ps.lastProbe) > probeEvery {
				ps.lastProbe = time.Now()
				p.probe(log, ps.w, ps.password)
				return
			}
		}
		ps.logProblem(log, addr)
	}
}

const (
	refusedOpen = "the peer refused the session during the OPEN exchange"
	probeEvery  = 30 * time.Second
)

// probe runs probeOpen in the background and records what it finds.
// Callers hold p.mu.
func (p *peerStates) probe(log *slog.Logger, w session, password string) {
	g := p.global
	p.probes.Go(func() {
		// A router that just refused us may close connections for a
		// moment (GoBGP idles 5s); try a few times.
		var problem string
		var err error
		for i := range 3 {
			time.Sleep(time.Duration(i) * 2 * time.Second)
			if problem, err = probeOpen(w, password, g.asn, g.routerID); err == nil {
				break
			}
		}
		switch {
		case err != nil:
			problem = fmt.Sprintf("%s (asking again to learn why failed: %v)", refusedOpen, err)
		case problem == "":
			problem = refusedOpen + " (it accepted the same OPEN when asked again; a transient failure?)"
		}
		p.note(log, w.addr, problem, true)
	})
}

func orNone(s string) string {
	if s == "" {
		return "unknown (no NOTIFICATION; TCP connection closed or hold timer expired)"
	}
	return s
}

// logProblem logs the session's current problem once per distinct
// problem, while the session is not established.
func (ps *peerState) logProblem(log *slog.Logger, addr netip.Addr) {
	if ps.up || ps.problem == "" || ps.problem == ps.logged {
		return
	}
	ps.logged = ps.problem
	log.Warn("bgp session not established", event.Attr(event.SessionDown), "peer", ps.name, "ip", addr, "state", ps.state, "reason", ps.problem)
}

// note records a problem GoBGP reported for the peer at addr.
func (p *peerStates) note(log *slog.Logger, addr netip.Addr, problem string, logNow bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ps, ok := p.m[addr]
	if !ok {
		return
	}
	ps.problem = problem
	if logNow {
		ps.logProblem(log, addr)
	}
}

// gobgpLogger passes GoBGP's log lines to slog at debug level, and turns
// the few that explain a failing session into peer problems with a hint.
type gobgpLogger struct {
	log    *slog.Logger
	states *peerStates
}

func (l *gobgpLogger) peerAddr(f gobgplog.Fields) (netip.Addr, bool) {
	k, ok := f["Key"].(string)
	if !ok {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(k)
	return a.Unmap(), err == nil
}

func (l *gobgpLogger) inspect(msg string, f gobgplog.Fields) {
	addr, ok := l.peerAddr(f)
	if !ok {
		return
	}
	switch msg {
	case "state changed":
		// GoBGP says why a session left a state only here.
		if problem := reasonProblem(fmt.Sprint(f["reason"])); problem != "" {
			l.states.note(l.log, addr, problem, false)
		}
	case "failed to connect":
		l.states.note(l.log, addr, connectProblem(fmt.Sprint(f["Error"])), true)
	case "sent notification":
		// GoBGP refused the peer's OPEN; Data says why.
		data := fmt.Sprint(f["Data"])
		problem := "NOTIFICATION sent to the peer: " + data
		if strings.Contains(data, "as number mismatch") {
			problem += ": the router's AS is not the asn configured for this peer"
		}
		l.states.note(l.log, addr, problem, false)
	}
}

var codeRE = regexp.MustCompile(`code (\d+)\D.*subcode (\d+)`)

// reasonProblem explains GoBGP's reason for a state change; "" for the
// reasons that are no problem (the Speaker's own changes, progress).
func reasonProblem(r string) string {
	switch {
	case strings.HasPrefix(r, "notification-"):
		dir := "received from the peer"
		if strings.HasPrefix(r, "notification-sent") {
			dir = "sent to the peer"
		}
		m := codeRE.FindStringSubmatch(r)
		if m == nil {
			return r
		}
		code, _ := strconv.Atoi(m[1])
		sub, _ := strconv.Atoi(m[2])
		return notificationProblem(dir, uint8(code), uint8(sub), nil)
	case strings.HasPrefix(r, "hold-timer-expired"):
		return "hold timer expired: no keepalive from the peer within the hold time (peer hung, link down, or traffic filtered)"
	case strings.HasPrefix(r, "read-failed"), strings.HasPrefix(r, "write-failed"):
		return "the peer closed the TCP connection without a NOTIFICATION (router restarting, or it does not accept this node: no matching neighbor or listen range)"
	}
	return ""
}

// notificationProblem explains a NOTIFICATION (RFC 4271 6, RFC 4486).
func notificationProblem(dir string, code, sub uint8, communication any) string {
	text := fmt.Sprintf("NOTIFICATION %s: code %d subcode %d", dir, code, sub)
	var hint string
	switch {
	case code == 2 && sub == 2:
		hint = "bad peer AS: the AS numbers do not match; check bgp.asn here and the router's remote-as for this node"
	case code == 2 && sub == 3:
		hint = "bad BGP identifier: two speakers share a router ID; set bgp.router_id"
	case code == 2 && sub == 6:
		hint = "unacceptable hold time; check hold_time against the router's timers"
	case code == 2:
		hint = "OPEN message error"
	case code == 4:
		hint = "hold timer expired: keepalives stopped arriving"
	case code == 6 && sub == 2:
		hint = "administrative shutdown on the router (neighbor shutdown)"
	case code == 6 && sub == 3:
		hint = "peer de-configured: the router has no neighbor or listen range for this node's address"
	case code == 6 && sub == 4:
		hint = "administrative reset on the router"
	case code == 6 && sub == 5:
		hint = "connection rejected: the router does not accept this node (no matching neighbor, listen range or limit reached)"
	case code == 6:
		hint = "Cease"
	}
	if c, ok := communication.(string); ok && c != "" {
		hint += fmt.Sprintf(" (the router says %q)", c)
	}
	if hint != "" {
		text += ": " + hint
	}
	return text
}

// connectProblem explains a failed TCP connection to a peer.
func connectProblem(err string) string {
	switch {
	case strings.Contains(err, "connection refused"):
		return "connect: connection refused: nothing listens on the peer's BGP port, or the router refuses this node's address (check port and the router's neighbor/listen range)"
	case strings.Contains(err, "i/o timeout"), strings.Contains(err, "timeout"):
		return "connect: no answer to TCP SYN: port 179 filtered by a firewall, the peer unreachable, or a TCP MD5 password mismatch (the router's kernel silently drops segments with a missing or wrong signature; check password_file on both sides)"
	case strings.Contains(err, "no route to host"), strings.Contains(err, "network is unreachable"):
		return "connect: " + err + ": no route to the peer (check source_address, ebgp_multihop and this node's routes)"
	case strings.Contains(err, "cannot assign requested address"):
		return "connect: " + err + ": source_address is not an address of this node"
	}
	return "connect: " + err
}

func (l *gobgpLogger) Panic(msg string, f gobgplog.Fields) {
	l.log.Error(msg, "library", "gobgp", "err", fieldsString(f))
	panic(msg)
}
func (l *gobgpLogger) Fatal(msg string, f gobgplog.Fields) {
	l.log.Error(msg, "library", "gobgp", "err", fieldsString(f))
}
func (l *gobgpLogger) Error(msg string, f gobgplog.Fields) {
	l.inspect(msg, f)
	l.log.Debug(msg, "library", "gobgp", "fields", fieldsString(f))
}
func (l *gobgpLogger) Warn(msg string, f gobgplog.Fields) {
	l.inspect(msg, f)
	l.log.Debug(msg, "library", "gobgp", "fields", fieldsString(f))
}
func (l *gobgpLogger) Info(msg string, f gobgplog.Fields) {
	l.inspect(msg, f)
	l.log.Debug(msg, "library", "gobgp", "fields", fieldsString(f))
}
func (l *gobgpLogger) Debug(msg string, f gobgplog.Fields) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(msg, "library", "gobgp", "fields", fieldsString(f))
	}
	if msg == "failed to connect" || msg == "state changed" {
		l.inspect(msg, f)
	}
}

// SetLevel is ignored; GetLevel asks for debug lines, because GoBGP logs
// failed connection attempts only at that level.
func (l *gobgpLogger) SetLevel(gobgplog.LogLevel)  {}
func (l *gobgpLogger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }

// fieldsString renders GoBGP's fields; none of them holds a password
// (GoBGP never logs its peer configuration).
func fieldsString(f gobgplog.Fields) string {
	var b strings.Builder
	for k, v := range f {
		if strings.Contains(strings.ToLower(k), "password") {
			continue
		}
		fmt.Fprintf(&b, "%s=%v ", k, v)
	}
	return strings.TrimSpace(b.String())
}
