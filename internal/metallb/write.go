package metallb

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// write renders the lbd configuration, keys in the order of docs/config.md,
// each item under a comment naming the MetalLB object it came from. It also
// returns that origin for the path of each item written ("bgp.peers[0]"),
// so that validation errors can name MetalLB objects.
func (c *converter) write(inputs []Input) ([]byte, map[string]*object) {
	w := &writer{}
	origins := map[string]*object{}
	c.writeHeader(w, inputs)
	w.blank()
	w.line(0, "version: 1")
	c.writePools(w, origins)
	c.writeL2(w, origins)
	c.writeBGP(w, origins)
	return []byte(w.b.String()), origins
}

func (c *converter) writeHeader(w *writer, inputs []Input) {
	var names []string
	for _, in := range inputs {
		names = append(names, displayName(in.Name))
	}
	w.comment(0, "/etc/lbd.yaml converted from MetalLB configuration by `lbd import-metallb`.")
	w.comment(0, "Read from: "+strings.Join(names, ", "))
	var kinds []string
	for _, k := range []string{kindPool, kindL2Adv, kindBGPAdv, kindPeer, kindCommunity, kindBFDProfile} {
		if n := len(c.objects(k)); n > 0 {
			kinds = append(kinds, fmt.Sprintf("%d %s", n, k))
		}
	}
	w.comment(0, "MetalLB objects: "+strings.Join(kinds, ", ")+".")
	if n := len(c.warnings); n > 0 {
		w.comment(0, fmt.Sprintf("%d warning%s: fields lbd does not carry over exactly. They were printed on stderr, and each is repeated above the item it concerns.", n, plural(n)))
	}
	if len(c.passwordFiles) > 0 {
		w.comment(0, "Before lbd starts, create on every node, mode 0600, each holding its peer's TCP MD5 password:")
		for _, f := range c.passwordFiles {
			w.comment(0, "  "+f)
		}
	}
	w.comment(0, "Check it on each node with `lbd check -c /etc/lbd.yaml`, and follow docs/migrating.md to cut over. Every key is described in docs/config.md.")
}

func (c *converter) writePools(w *writer, origins map[string]*object) {
	if len(c.pools) == 0 {
		return
	}
	w.blank()
	active := 0
	for _, p := range c.pools {
		if p.announced {
			active++
		}
	}
	if active == 0 {
		w.line(0, "pools: []")
	} else {
		w.line(0, "pools:")
	}
	i := 0
	for _, p := range c.pools {
		item := &writer{}
		item.origin(2, "IPAddressPool", p.src.Meta.Name, p.notes)
		item.line(2, "- name: %s", scalar(p.name))
		item.line(4, "addresses:")
		for _, a := range p.addresses {
			item.line(6, "- %s", scalar(a))
		}
		if p.autoAssign != nil {
			item.line(4, "auto_assign: %t", *p.autoAssign)
		}
		if p.avoidBuggy != nil {
			item.line(4, "avoid_buggy_ips: %t", *p.avoidBuggy)
		}
		if len(p.namespaces) > 0 {
			item.line(4, "namespaces: %s", flow(p.namespaces))
		}
		if p.priority != 0 {
			item.line(4, "priority: %d", p.priority)
		}
		if p.announced {
			origins[fmt.Sprintf("pools[%d]", i)] = p.src
			i++
			w.b.WriteString(item.b.String())
			continue
		}
		// Commented out, so that uncommenting gives a valid item again.
		for _, l := range strings.SplitAfter(item.b.String(), "\n") {
			switch {
			case l == "":
			case strings.HasPrefix(l, "  #"):
				w.b.WriteString(l)
			default:
				w.b.WriteString("  # " + l[2:])
			}
		}
	}
}

func (c *converter) writeL2(w *writer, origins map[string]*object) {
	if len(c.l2) == 0 {
		if c.excludeFrom != nil {
			c.warn(c.excludeFrom, "data", "no L2Advertisement, so the interfaces to exclude are not needed; not converted")
		}
		return
	}
	w.blank()
	w.line(0, "l2:")
	if c.excludeFrom != nil {
		origins["l2.exclude_interfaces"] = c.excludeFrom
		w.line(2, "# From ConfigMap %s: the interfaces MetalLB never announced on.", sanitizeComment(c.excludeFrom.Meta.Name))
		w.line(2, "exclude_interfaces: %s", flow(c.excludeL2))
	}
	w.line(2, "advertisements:")
	for i, a := range c.l2 {
		origins[fmt.Sprintf("l2.advertisements[%d]", i)] = a.src
		w.origin(4, "L2Advertisement", a.src.Meta.Name, a.notes)
		w.line(4, "- name: %s", scalar(a.name))
		w.line(6, "pools: %s", flow(a.pools))
		if len(a.interfaces) > 0 {
			w.line(6, "interfaces: %s", flow(a.interfaces))
		}
		writeSelector(w, 6, a.nodeSelector)
	}
}

func (c *converter) writeBGP(w *writer, origins map[string]*object) {
	if len(c.peers) == 0 && len(c.bgpAds) == 0 {
		return
	}
	w.blank()
	w.line(0, "bgp:")
	if c.asnFrom != nil {
		origins["bgp.asn"] = c.asnFrom
		w.line(2, "asn: %d  # myASN of the BGPPeers", c.asn)
	}
	if c.routerID != "" {
		origins["bgp.router_id"] = c.routerFrom
		w.line(2, "router_id: %s  # routerID of %s", scalar(c.routerID), sanitizeComment(c.routerFrom.ID()))
	}
	if len(c.peers) > 0 {
		w.line(2, "peers:")
	}
	for i, p := range c.peers {
		origins[fmt.Sprintf("bgp.peers[%d]", i)] = p.src
		w.origin(4, "BGPPeer", p.src.Meta.Name, p.notes)
		w.line(4, "- name: %s", scalar(p.name))
		w.line(6, "address: %s", scalar(p.address))
		w.line(6, "asn: %d", p.asn)
		if p.port != 0 {
			w.line(6, "port: %d", p.port)
		}
		for _, d := range []struct {
			key string
			v   *time.Duration
		}{{"hold_time", p.hold}, {"keepalive", p.keepalive}, {"connect_retry", p.connectRetry}} {
			if d.v != nil {
				w.line(6, "%s: %s", d.key, duration(*d.v))
			}
		}
		if p.sourceAddress != "" {
			w.line(6, "source_address: %s", scalar(p.sourceAddress))
		}
		if p.multihop != 0 {
			w.line(6, "ebgp_multihop: %d", p.multihop)
		}
		if p.passwordFile != "" {
			w.line(6, "password_file: %s  # create it: mode 0600, the password only", scalar(p.passwordFile))
		}
		w.line(6, "graceful_restart:")
		w.line(8, "enabled: %t", p.gracefulRestart)
		if p.bfd != nil {
			w.line(6, "bfd:")
			w.line(8, "transmit_interval: %dms", p.bfd.tx)
			w.line(8, "receive_interval: %dms", p.bfd.rx)
			w.line(8, "detect_multiplier: %d", p.bfd.mult)
		}
		writeSelector(w, 6, p.nodeSelector)
	}
	if len(c.bgpAds) > 0 {
		w.line(2, "advertisements:")
	}
	for i, a := range c.bgpAds {
		origins[fmt.Sprintf("bgp.advertisements[%d]", i)] = a.src
		w.origin(4, "BGPAdvertisement", a.src.Meta.Name, a.notes)
		w.line(4, "- name: %s", scalar(a.name))
		w.line(6, "pools: %s", flow(a.pools))
		if a.aggLen != nil {
			w.line(6, "aggregation_length: %d", *a.aggLen)
		}
		if a.aggLenV6 != nil {
			w.line(6, "aggregation_length_v6: %d", *a.aggLenV6)
		}
		if a.localPref != nil {
			w.line(6, "local_preference: %d", *a.localPref)
		}
		if len(a.communities) > 0 {
			w.line(6, "communities: %s", quotedFlow(a.communities))
		}
		if len(a.large) > 0 {
			w.line(6, "large_communities: %s", quotedFlow(a.large))
		}
		if len(a.peers) > 0 {
			w.line(6, "peers: %s", flow(a.peers))
		}
		writeSelector(w, 6, a.nodeSelector)
	}
}

func writeSelector(w *writer, indent int, s *labelSelector) {
	if s == nil {
		return
	}
	w.line(indent, "node_selector:")
	if len(s.MatchLabels) > 0 {
		w.line(indent+2, "match_labels:")
		keys := make([]string, 0, len(s.MatchLabels))
		for k := range s.MatchLabels {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			w.line(indent+4, "%s: %s", scalar(k), scalar(s.MatchLabels[k]))
		}
	}
	if len(s.MatchExpressions) > 0 {
		w.line(indent+2, "match_expressions:")
		for _, r := range s.MatchExpressions {
			w.line(indent+4, "- key: %s", scalar(r.Key))
			w.line(indent+6, "operator: %s", scalar(r.Operator))
			if len(r.Values) > 0 {
				w.line(indent+6, "values: %s", flow(r.Values))
			}
		}
	}
}

// writer builds the output text line by line.
type writer struct{ b strings.Builder }

func (w *writer) line(indent int, format string, args ...any) {
	w.b.WriteString(strings.Repeat(" ", indent))
	fmt.Fprintf(&w.b, format, args...)
	w.b.WriteByte('\n')
}

func (w *writer) blank() { w.b.WriteByte('\n') }

// comment writes text as comment lines of at most about 78 columns; a
// continuation of a "- " item is indented under it.
// origin writes the comment above an item: the MetalLB object it came from
// and every note about what was not carried over exactly.
func (w *writer) origin(indent int, kind, name string, notes []string) {
	w.comment(indent, "From "+kind+" "+name+".")
	for _, n := range notes {
		w.comment(indent, "- "+n)
	}
}

func (w *writer) comment(indent int, text string) {
	width := max(78-indent-2, 30)
	cont := ""
	if strings.HasPrefix(text, "- ") {
		cont = "  "
	}
	line := ""
	for word := range strings.FieldsSeq(sanitizeComment(text)) {
		if line != "" && len(line)+1+len(word) > width {
			w.line(indent, "# %s", line)
			line = cont + word
			continue
		}
		if line == "" {
			line = word
		} else {
			line += " " + word
		}
	}
	if strings.HasPrefix(text, "  ") {
		line = "  " + line // keep an indented list item indented
	}
	w.line(indent, "# %s", line)
}

// sanitizeComment keeps text from the input on one comment line.
func sanitizeComment(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '\u2028' || r == '\u2029' || r == 0x85 {
			return ' '
		}
		return r
	}, s)
}

var plainRE = regexp.MustCompile(`^[A-Za-z0-9_./][A-Za-z0-9_./:-]*$`)

// scalar writes s as a YAML string: plain when that reads back as the same
// string both in a block and in a flow list, double-quoted otherwise.
func scalar(s string) string {
	if plainRE.MatchString(s) && readsBack(s) {
		return s
	}
	return strconv.Quote(s)
}

func readsBack(s string) bool {
	var m map[string]any
	if yaml.Unmarshal([]byte("k: "+s), &m) != nil {
		return false
	}
	if v, ok := m["k"].(string); !ok || v != s {
		return false
	}
	var l []any
	if yaml.Unmarshal([]byte("["+s+"]"), &l) != nil || len(l) != 1 {
		return false
	}
	v, ok := l[0].(string)
	return ok && v == s
}

func flow(items []string) string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = scalar(s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

func quotedFlow(items []string) string {
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// duration writes d as lbd reads it, in whole seconds where it can ("90s"
// rather than Go's "1m30s").
func duration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
