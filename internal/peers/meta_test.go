package peers

import (
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestNodeMetaRoundTrip(t *testing.T) {
	mac := func(s string) net.HardwareAddr { m, _ := net.ParseMAC(s); return m }
	for _, m := range []NodeMeta{
		{Since: time.Unix(1_764_878_400, 123456000)},
		{Since: time.Unix(1, 0), Interfaces: []string{"*", "eth0", "bond0.100"}, MACs: []net.HardwareAddr{mac("02:00:00:00:00:01"), mac("02:00:00:00:00:02")}},
		{Since: time.Unix(2, 0), Interfaces: []string{"eth0"}, MACs: []net.HardwareAddr{mac("02:00:00:00:00:01")}, Silent: true},
	} {
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalNodeMeta(b)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Since.Equal(m.Since) || !reflect.DeepEqual(got.Interfaces, m.Interfaces) || !reflect.DeepEqual(got.MACs, m.MACs) || got.Silent != m.Silent {
			t.Errorf("round trip of %+v gave %+v", m, got)
		}
		// Every truncation and any extra byte is refused.
		for i := range len(b) {
			if _, err := UnmarshalNodeMeta(b[:i]); err == nil {
				t.Errorf("%d of %d bytes accepted", i, len(b))
			}
		}
		if _, err := UnmarshalNodeMeta(append(b, 0)); err == nil {
			t.Error("a trailing byte accepted")
		}
	}
}

// TestNodeMetaSilentVersion: a silent node's metadata is version 2 (which
// an lbd that reads version 1 only takes for a candidate on no
// interface); otherwise version 1, byte for byte as before. A flags byte
// with bits this version does not know is read for the bits it knows.
func TestNodeMetaSilentVersion(t *testing.T) {
	m := NodeMeta{Since: time.Unix(5, 0), Interfaces: []string{"eth0"}}
	v1, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m.Silent = true
	v2, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if v1[0] != 1 || v2[0] != 2 || len(v2) != len(v1)+1 || string(v2[1:len(v1)]) != string(v1[1:]) || v2[len(v1)] != 1 {
		t.Fatalf("not silent % x, silent % x: want version 1, and version 2 with a flags byte of 1", v1, v2)
	}
	later := append([]byte(nil), v2...)
	later[len(later)-1] = 0x80
	if got, err := UnmarshalNodeMeta(later); err != nil || got.Silent {
		t.Errorf("flags 0x80: %+v, %v; want read, not silent", got, err)
	}
	later[len(later)-1] = 0x81
	if got, err := UnmarshalNodeMeta(later); err != nil || !got.Silent {
		t.Errorf("flags 0x81: %+v, %v; want read, silent", got, err)
	}
}

// TestNodeMetaFits: 20 interfaces with 15-character names and their MACs
// fit memberlist's metadata; a list that does not is refused, not cut.
func TestNodeMetaFits(t *testing.T) {
	m := NodeMeta{Since: time.Now()}
	for i := range 20 {
		m.Interfaces = append(m.Interfaces, strings.Repeat("e", 13)+string(rune('a'+i))+"0")
		m.MACs = append(m.MACs, net.HardwareAddr{2, 0, 0, 0, 0, byte(i)})
	}
	if b, err := m.Marshal(); err != nil || len(b) > MetaLimit {
		t.Fatalf("20 interfaces: %d bytes, %v", len(b), err)
	}
	for range 20 {
		m.Interfaces = append(m.Interfaces, strings.Repeat("x", 15))
	}
	if _, err := m.Marshal(); err == nil {
		t.Error("metadata over the limit accepted")
	}
}

func FuzzUnmarshalNodeMeta(f *testing.F) {
	b, _ := NodeMeta{Since: time.Unix(5, 0), Interfaces: []string{"eth0"}, MACs: []net.HardwareAddr{{2, 0, 0, 0, 0, 1}}}.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := UnmarshalNodeMeta(b)
		if err != nil {
			return
		}
		// What decodes re-encodes to the same bytes.
		again, err := m.Marshal()
		if err != nil || string(again) != string(b) {
			t.Errorf("%x decoded to %+v, which encodes to %x (%v)", b, m, again, err)
		}
	})
}
