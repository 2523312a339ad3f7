package announce

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/mdlayher/ndp"
)

func ns(target string, sll ...byte) *ndp.NeighborSolicitation {
	m := &ndp.NeighborSolicitation{TargetAddress: netip.MustParseAddr(target)}
	if len(sll) > 0 {
		m.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: sll}}
	}
	return m
}

func TestDecideNDP(t *testing.T) {
	var (
		client  = netip.MustParseAddr("2001:db8::2")
		clientL = netip.MustParseAddr("fe80::2")
		snm10   = netip.MustParseAddr("ff02::1:ff00:10")
		vip6    = netip.MustParseAddr("2001:db8::10")
		cm      = []byte(clientMAC)
		nm      = []byte(nodeMAC)
	)
	tests := []struct {
		name          string
		in            nsIn
		iface         string
		want          dropReason
		wantTo        netip.Addr
		wantSolicited bool
	}{
		{"multicast solicitation", nsIn{ns("2001:db8::10", cm...), client, snm10, 255}, "eth0", answer, client, true},
		{"from link-local", nsIn{ns("2001:db8::10", cm...), clientL, snm10, 255}, "eth0", answer, clientL, true},
		{"unicast probe without option", nsIn{ns("2001:db8::10"), client, vip6, 255}, "eth0", answer, client, true},
		{"control message unknown", nsIn{ns("2001:db8::10"), client, netip.Addr{}, 0}, "eth0", answer, client, true},
		{"DAD probe for owned", nsIn{ns("2001:db8::10"), netip.IPv6Unspecified(), snm10, 255}, "eth0", answer, allNodes, false},
		{"owned on both interfaces", nsIn{ns("2001:db8:1::10", cm...), client, snm10, 255}, "eth1", answer, client, true},
		{"not owned", nsIn{ns("2001:db8::11", cm...), client, snm10, 255}, "eth0", notOwned, netip.Addr{}, false},
		{"DAD probe for unowned", nsIn{ns("2001:db8::11"), netip.IPv6Unspecified(), snm10, 255}, "eth0", notOwned, netip.Addr{}, false},
		{"owned elsewhere", nsIn{ns("2001:db8::20", cm...), client, snm10, 255}, "eth0", wrongInterface, netip.Addr{}, false},
		{"advertisement", nsIn{unsolicitedNA(clientMAC, vip6), client, allNodes, 255}, "eth0", notRequest, netip.Addr{}, false},
		{"router solicitation", nsIn{&ndp.RouterSolicitation{}, client, netip.MustParseAddr("ff02::2"), 255}, "eth0", notRequest, netip.Addr{}, false},
		{"unparsable", nsIn{nil, client, snm10, 255}, "eth0", malformed, netip.Addr{}, false},
		{"hop limit not 255", nsIn{ns("2001:db8::10", cm...), client, snm10, 64}, "eth0", malformed, netip.Addr{}, false},
		{"multicast target", nsIn{ns("ff02::1", cm...), client, snm10, 255}, "eth0", malformed, netip.Addr{}, false},
		{"DAD with source option", nsIn{ns("2001:db8::10", cm...), netip.IPv6Unspecified(), snm10, 255}, "eth0", malformed, netip.Addr{}, false},
		{"DAD to unicast", nsIn{ns("2001:db8::10"), netip.IPv6Unspecified(), vip6, 255}, "eth0", malformed, netip.Addr{}, false},
		{"multicast without option", nsIn{ns("2001:db8::10"), client, snm10, 255}, "eth0", malformed, netip.Addr{}, false},
		{"own solicitation", nsIn{ns("2001:db8::10", nm...), client, snm10, 255}, "eth0", fromSelf, netip.Addr{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			na, to, got := decideNDP(tt.in, tt.iface, nodeMAC, testOwn)
			if got != tt.want {
				t.Fatalf("reason = %v, want %v", got, tt.want)
			}
			if got != answer {
				if na != nil {
					t.Fatalf("advertisement %+v with reason %v", na, got)
				}
				return
			}
			if to != tt.wantTo {
				t.Errorf("sent to %s, want %s", to, tt.wantTo)
			}
			target := tt.in.msg.(*ndp.NeighborSolicitation).TargetAddress
			if na.TargetAddress != target || !na.Override || na.Solicited != tt.wantSolicited || na.Router {
				t.Errorf("advertisement = %+v", na)
			}
			if len(na.Options) != 1 {
				t.Fatalf("options = %v", na.Options)
			}
			lla, ok := na.Options[0].(*ndp.LinkLayerAddress)
			if !ok || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, nodeMAC) {
				t.Errorf("option = %+v, want target link-layer address %s", na.Options[0], nodeMAC)
			}
			if _, err := ndp.MarshalMessage(na); err != nil {
				t.Errorf("marshal: %v", err)
			}
		})
	}
}
