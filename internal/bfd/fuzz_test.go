package bfd

import (
	"testing"
	"time"
)

// FuzzUnmarshal feeds arbitrary bytes to the packet decoder: it never
// panics, and what it accepts marshals back to a packet that decodes the
// same (the decoder keeps nothing it cannot send).
func FuzzUnmarshal(f *testing.F) {
	for _, p := range []Packet{
		{State: Down, DetectMult: 3, MyDisc: 1, DesiredMinTx: time.Second, RequiredMinRx: 300 * time.Millisecond},
		{State: Up, Poll: true, DetectMult: 3, MyDisc: 1, YourDisc: 2, DesiredMinTx: 300 * time.Millisecond},
		{State: AdminDown, Diag: DiagAdminDown, DetectMult: 1, MyDisc: 9},
	} {
		f.Add(p.Marshal())
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Unmarshal(b)
		if err != nil {
			return
		}
		q, err := Unmarshal(p.Marshal())
		if err != nil || q != p {
			t.Errorf("accepted %x as %+v, which marshals to %+v (%v)", b, p, q, err)
		}
	})
}
