package announce

import "github.com/prometheus/client_golang/prometheus"

// dropReason says why a received ARP or NDP packet got no answer. The zero
// value, answer, means it did get one.
type dropReason int

const (
	answer dropReason = iota
	// notOwned: the target address is not announced by this node.
	notOwned
	// notRequest: not an ARP request or a Neighbor Solicitation.
	notRequest
	// wrongInterface: the target is announced, but on another interface.
	wrongInterface
	// malformed: the packet breaks the protocol (lengths, hop limit,
	// options that must or must not be present).
	malformed
	// fromSelf: this node sent it.
	fromSelf
)

var dropReasons = []dropReason{notOwned, notRequest, wrongInterface, malformed, fromSelf}

func (r dropReason) String() string {
	switch r {
	case answer:
		return "answer"
	case notOwned:
		return "not_owned"
	case notRequest:
		return "not_request"
	case wrongInterface:
		return "wrong_interface"
	case malformed:
		return "malformed"
	case fromSelf:
		return "from_self"
	}
	return "unknown"
}

func newDroppedCounter(reg prometheus.Registerer) (*prometheus.CounterVec, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lbd_l2_dropped_total",
		Help: "ARP and NDP packets the L2 announcer received and did not answer, by reason.",
	}, []string{"reason"})
	for _, r := range dropReasons {
		c.WithLabelValues(r.String())
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}
