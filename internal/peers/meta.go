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
// answer from another lbd node is not taken for a conflict).
type NodeMeta struct {
	Since      time.Time
	Interfaces []string
	MACs       []net.HardwareAddr
}

// metaVersion is the first byte of an encoded NodeMeta.
const metaVersion = 1

// Marshal encodes m in at most MetaLimit bytes: a version byte, Since in
// Unix nanoseconds, then each interface name and each MAC with its
// length. Too many interfaces for the limit is an error (the caller then
// publishes fewer).
func (m NodeMeta) Marshal() ([]byte, error) {
	b := []byte{metaVersion}
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
	if len(b) < 9 || b[0] != metaVersion {
		return bad("not version 1")
	}
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
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return m, nil
}
