package bfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// State is a session state (RFC 5880 §4.1).
type State uint8

// States, as on the wire.
const (
	AdminDown State = 0
	Down      State = 1
	Init      State = 2
	Up        State = 3
)

func (s State) String() string {
	switch s {
	case AdminDown:
		return "admin_down"
	case Down:
		return "down"
	case Init:
		return "init"
	case Up:
		return "up"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Diag is a diagnostic code: why the session last went down (§4.1).
type Diag uint8

// Diagnostics, as on the wire.
const (
	DiagNone              Diag = 0
	DiagDetectionExpired  Diag = 1
	DiagEchoFailed        Diag = 2
	DiagNeighborDown      Diag = 3
	DiagForwardingReset   Diag = 4
	DiagPathDown          Diag = 5
	DiagConcatenatedDown  Diag = 6
	DiagAdminDown         Diag = 7
	DiagReverseConcatDown Diag = 8
	diagMax                    = DiagReverseConcatDown
)

// Diags lists every diagnostic, for metrics that show zero values.
var Diags = []Diag{DiagNone, DiagDetectionExpired, DiagEchoFailed, DiagNeighborDown, DiagForwardingReset,
	DiagPathDown, DiagConcatenatedDown, DiagAdminDown, DiagReverseConcatDown}

func (d Diag) String() string {
	switch d {
	case DiagNone:
		return "none"
	case DiagDetectionExpired:
		return "control_detection_time_expired"
	case DiagEchoFailed:
		return "echo_function_failed"
	case DiagNeighborDown:
		return "neighbor_signaled_session_down"
	case DiagForwardingReset:
		return "forwarding_plane_reset"
	case DiagPathDown:
		return "path_down"
	case DiagConcatenatedDown:
		return "concatenated_path_down"
	case DiagAdminDown:
		return "administratively_down"
	case DiagReverseConcatDown:
		return "reverse_concatenated_path_down"
	}
	return fmt.Sprintf("diag(%d)", uint8(d))
}

// Packet is a BFD Control packet (§4.1) without authentication.
type Packet struct {
	Diag       Diag
	State      State
	Poll       bool
	Final      bool
	CPI        bool // Control Plane Independent
	Demand     bool
	DetectMult uint8
	MyDisc     uint32
	YourDisc   uint32
	// The intervals, in the packet's microseconds.
	DesiredMinTx      time.Duration
	RequiredMinRx     time.Duration
	RequiredMinEchoRx time.Duration
}

// packetLen is the length of a Control packet without authentication.
const packetLen = 24

// version is the protocol version this package speaks.
const version = 1

// Errors of Unmarshal: each a reason §6.8.6 says to discard the packet.
var (
	errShort      = errors.New("shorter than 24 bytes")
	errVersion    = errors.New("not version 1")
	errLength     = errors.New("length field out of range")
	errDetectMult = errors.New("detect multiplier is 0")
	errMultipoint = errors.New("multipoint bit set")
	errMyDisc     = errors.New("my discriminator is 0")
	errYourDisc   = errors.New("your discriminator is 0 in a packet not in Down or AdminDown")
	errAuth       = errors.New("authentication present (not supported)")
	errPollFinal  = errors.New("poll and final both set")
)

// Marshal writes p.
func (p *Packet) Marshal() []byte {
	b := make([]byte, packetLen)
	b[0] = version<<5 | byte(p.Diag)&0x1f
	flags := byte(p.State) << 6
	if p.Poll {
		flags |= 0x20
	}
	if p.Final {
		flags |= 0x10
	}
	if p.CPI {
		flags |= 0x08
	}
	if p.Demand {
		flags |= 0x02
	}
	b[1] = flags
	b[2] = p.DetectMult
	b[3] = packetLen
	binary.BigEndian.PutUint32(b[4:], p.MyDisc)
	binary.BigEndian.PutUint32(b[8:], p.YourDisc)
	binary.BigEndian.PutUint32(b[12:], micros(p.DesiredMinTx))
	binary.BigEndian.PutUint32(b[16:], micros(p.RequiredMinRx))
	binary.BigEndian.PutUint32(b[20:], micros(p.RequiredMinEchoRx))
	return b
}

func micros(d time.Duration) uint32 {
	us := d / time.Microsecond
	if us < 0 {
		return 0
	}
	if us > 0xffffffff {
		return 0xffffffff
	}
	return uint32(us)
}

// Unmarshal reads a Control packet and applies the checks of RFC 5880
// §6.8.6 that need no session: a packet that fails one is discarded.
func Unmarshal(b []byte) (Packet, error) {
	var p Packet
	if len(b) < packetLen {
		return p, errShort
	}
	if b[0]>>5 != version {
		return p, errVersion
	}
	if l := int(b[3]); l < packetLen || l > len(b) {
		return p, errLength
	}
	flags := b[1]
	if flags&0x04 != 0 {
		return p, errAuth
	}
	if flags&0x01 != 0 {
		return p, errMultipoint
	}
	p.Diag = Diag(b[0] & 0x1f)
	p.State = State(flags >> 6)
	p.Poll, p.Final, p.CPI, p.Demand = flags&0x20 != 0, flags&0x10 != 0, flags&0x08 != 0, flags&0x02 != 0
	p.DetectMult = b[2]
	p.MyDisc = binary.BigEndian.Uint32(b[4:])
	p.YourDisc = binary.BigEndian.Uint32(b[8:])
	p.DesiredMinTx = time.Duration(binary.BigEndian.Uint32(b[12:])) * time.Microsecond
	p.RequiredMinRx = time.Duration(binary.BigEndian.Uint32(b[16:])) * time.Microsecond
	p.RequiredMinEchoRx = time.Duration(binary.BigEndian.Uint32(b[20:])) * time.Microsecond
	switch {
	case p.DetectMult == 0:
		return p, errDetectMult
	case p.MyDisc == 0:
		return p, errMyDisc
	case p.YourDisc == 0 && p.State != Down && p.State != AdminDown:
		return p, errYourDisc
	case p.Poll && p.Final:
		return p, errPollFinal
	}
	return p, nil
}
