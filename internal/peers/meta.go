package peers

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// NodeMeta is what a node tells the others about itself through the
// detector, instead of writing it to its liveness Lease: when its term of
// life began (the owner choice's seniority and the owner record's term),
// the interfaces its L2 advertisements may use, and its MACs (so that an
// answer from another lbd node is not taken for a conflict); and whether
// it is silent at L2 (agent.Agent.Silent): then the others count it out
// as an owner.
type NodeMeta struct {
	Since      time.Time
	Interfaces []string
	MACs       []net.HardwareAddr
	Silent     bool
}

// The first byte of an encoded NodeMeta. Version 2 is version 1 and a
// flags byte, and is written only while the node is silent: an lbd that
// reads version 1 only takes a node whose metadata it cannot read for a
// candidate on no interface (cmd/lbd's peerSource.Peers), which is what
// silent means, so nodes of both versions agree during an upgrade.
const (
	metaVersion           = 1
	metaVersionFlags      = 2
	metaSilent       byte = 1 // flags: silent at L2
)

// Marshal encodes m in at most MetaLimit bytes: a version byte, Since in
// Unix nanoseconds, then each interface name and each MAC with its
// length, and, while silent, a flags byte. Too many interfaces for the
// limit is an error (the caller then publishes fewer).
func (m NodeMeta) Marshal() ([]byte, error) {
	b := []byte{metaVersion}
	if m.Silent {
		b[0] = metaVersionFlags
	}
	b = binary.BigEndian.AppendUint64(b, uint64(m.Since.UnixNano()))
	if len(m.Interfaces) > 255 || len(m.MACs) > 255 {
		return nil, errors.New("peers: more than 255 interfaces or MACs")
	}
	b = append(b, byte(len(m.Interfaces)))
	for _, name := range m.Interfaces {
		if name == "" || len(name) > 255 {
			return nil, fmt.Errorf("peers: interface name %q", name)
		}
		b = append(b, byte(len(name)))
		b = append(b, name...)
	}
	b = append(b, byte(len(m.MACs)))
	for _, mac := range m.MACs {
		if len(mac) == 0 || len(mac) > 20 {
			return nil, fmt.Errorf("peers: hardware address %v", mac)
		}
		b = append(b, byte(len(mac)))
		b = append(b, mac...)
	}
	if m.Silent {
		b = append(b, metaSilent)
	}
	if len(b) > MetaLimit {
		return nil, fmt.Errorf("peers: metadata of %d bytes, more than %d", len(b), MetaLimit)
	}
	return b, nil
}

// UnmarshalNodeMeta decodes what Marshal wrote; anything else (another
// version, a truncated or padded buffer) is an error.
func UnmarshalNodeMeta(b []byte) (NodeMeta, error) {
	var m NodeMeta
	bad := func(what string) (NodeMeta, error) {
		return NodeMeta{}, fmt.Errorf("peers: metadata: %s", what)
	}
	if len(b) < 9 || (b[0] != metaVersion && b[0] != metaVersionFlags) {
		return bad("not version 1 or 2")
	}
	flags := b[0] == metaVersionFlags
	m.Since = time.Unix(0, int64(binary.BigEndian.Uint64(b[1:9])))
	b = b[9:]
	next := func() ([]byte, bool) {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return nil, false
		}
		v := b[1 : 1+int(b[0])]
		b = b[1+int(b[0]):]
		return v, true
	}
	count := func() (int, bool) {
		if len(b) < 1 {
			return 0, false
		}
		n := int(b[0])
		b = b[1:]
		return n, true
	}
	n, ok := count()
	if !ok {
		return bad("truncated")
	}
	for range n {
		v, ok := next()
		if !ok || len(v) == 0 {
			return bad("truncated interface name")
		}
		m.Interfaces = append(m.Interfaces, string(v))
	}
	if n, ok = count(); !ok {
		return bad("truncated")
	}
	for range n {
		v, ok := next()
		if !ok || len(v) == 0 || len(v) > 20 {
			return bad("truncated or oversized hardware address")
		}
		m.MACs = append(m.MACs, net.HardwareAddr(append([]byte(nil), v...)))
	}
	if flags {
		if len(b) < 1 {
			return bad("truncated")
		}
		m.Silent = b[0]&metaSilent != 0 // other bits: a later version's
		b = b[1:]
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return m, nil
}
