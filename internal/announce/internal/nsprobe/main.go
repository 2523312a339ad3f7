// Command nsprobe sends one IPv6 Neighbor Solicitation the way a host's
// reachability probe does (unicast to the target, without a source
// link-layer option) and prints the target link-layer address of the first
// Neighbor Advertisement for that target. It exits 1 when none comes. The
// privileged tests of package announce run it in the client namespace;
// ndisc6 can only send multicast solicitations.
//
// With -advertise it instead sends one unsolicited Neighbor Advertisement
// (Override) for the target to all-nodes, as a host that takes the address
// does, and exits. With -flood DURATION it sends malformed and foreign ARP
// and NDP frames for that long (flood.go) and prints how many.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/ndp"
)

func main() {
	iface := flag.String("i", "", "interface")
	target := flag.String("target", "", "target address")
	wait := flag.Duration("wait", time.Second, "how long to wait for an answer")
	advertise := flag.Bool("advertise", false, "send an unsolicited advertisement for the target instead")
	floodFor := flag.Duration("flood", 0, "send malformed and foreign ARP/NDP frames for this long instead")
	rate := flag.Int("rate", 20000, "frames per second of the flood")
	flag.Parse()
	if *floodFor > 0 {
		n, err := flood(*iface, netip.MustParseAddr(*target), *floodFor, *rate)
		if err != nil {
			fmt.Fprintln(os.Stderr, "nsprobe:", err)
			os.Exit(1)
		}
		fmt.Println(n)
		return
	}
	if *advertise {
		if err := advertiseNA(*iface, *target); err != nil {
			fmt.Fprintln(os.Stderr, "nsprobe:", err)
			os.Exit(1)
		}
		return
	}
	mac, err := probe(*iface, *target, *wait)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nsprobe:", err)
		os.Exit(1)
	}
	fmt.Println(mac)
}

func probe(iface, target string, wait time.Duration) (net.HardwareAddr, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	tgt, err := netip.ParseAddr(target)
	if err != nil {
		return nil, err
	}
	c, _, err := ndp.Listen(ifi, ndp.Global)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.WriteTo(&ndp.NeighborSolicitation{TargetAddress: tgt}, nil, tgt); err != nil {
		return nil, fmt.Errorf("send to %s: %w", tgt, err)
	}
	if err := c.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return nil, err
	}
	for {
		m, _, _, err := c.ReadFrom()
		if err != nil {
			return nil, err
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok || na.TargetAddress != tgt || !na.Solicited {
			continue
		}
		for _, o := range na.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
				return lla.Addr, nil
			}
		}
		return nil, errors.New("advertisement without target link-layer address")
	}
}

func advertiseNA(iface, target string) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	tgt, err := netip.ParseAddr(target)
	if err != nil {
		return err
	}
	c, _, err := ndp.Listen(ifi, ndp.LinkLocal)
	if err != nil {
		return err
	}
	defer c.Close()
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: tgt,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr}},
	}
	return c.WriteTo(na, nil, netip.MustParseAddr("ff02::1"))
}
