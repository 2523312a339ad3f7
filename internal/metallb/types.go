package metallb

import (
	"strconv"
	"strings"
	"unicode"
)

// The MetalLB custom resources, as far as the converter reads them. Field
// names are MetalLB's JSON names; a field the converter does not know is
// reported, never ignored (see unknownKeys). v1beta1 and v1beta2 BGPPeers
// share one struct: v1beta2 only added fields.

// meta is the part of metadata the converter uses.
type meta struct {
	Name      string            `yaml:"name"`
	Namespace string            `yaml:"namespace"`
	Labels    map[string]string `yaml:"labels"`
}

// labelSelector is a Kubernetes metav1.LabelSelector.
type labelSelector struct {
	MatchLabels      map[string]string  `yaml:"matchLabels"`
	MatchExpressions []labelRequirement `yaml:"matchExpressions"`
}

type labelRequirement struct {
	Key      string   `yaml:"key"`
	Operator string   `yaml:"operator"`
	Values   []string `yaml:"values"`
}

func (s labelSelector) empty() bool {
	return len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

type ipAddressPoolSpec struct {
	Addresses         []string           `yaml:"addresses"`
	AutoAssign        *bool              `yaml:"autoAssign"`
	AvoidBuggyIPs     *bool              `yaml:"avoidBuggyIPs"`
	ServiceAllocation *serviceAllocation `yaml:"serviceAllocation"`
}

type serviceAllocation struct {
	Priority           int             `yaml:"priority"`
	Namespaces         []string        `yaml:"namespaces"`
	NamespaceSelectors []labelSelector `yaml:"namespaceSelectors"`
	ServiceSelectors   []labelSelector `yaml:"serviceSelectors"`
}

type l2AdvertisementSpec struct {
	IPAddressPools         []string        `yaml:"ipAddressPools"`
	IPAddressPoolSelectors []labelSelector `yaml:"ipAddressPoolSelectors"`
	NodeSelectors          []labelSelector `yaml:"nodeSelectors"`
	Interfaces             []string        `yaml:"interfaces"`
}

type bgpAdvertisementSpec struct {
	AggregationLength      *int32          `yaml:"aggregationLength"`
	AggregationLengthV6    *int32          `yaml:"aggregationLengthV6"`
	LocalPref              uint32          `yaml:"localPref"`
	Communities            []string        `yaml:"communities"`
	IPAddressPools         []string        `yaml:"ipAddressPools"`
	IPAddressPoolSelectors []labelSelector `yaml:"ipAddressPoolSelectors"`
	NodeSelectors          []labelSelector `yaml:"nodeSelectors"`
	Peers                  []string        `yaml:"peers"`
}

type bgpPeerSpec struct {
	MyASN                  uint32          `yaml:"myASN"`
	PeerASN                uint32          `yaml:"peerASN"`
	DynamicASN             string          `yaml:"dynamicASN"`
	PeerAddress            string          `yaml:"peerAddress"`
	Interface              string          `yaml:"interface"`
	SourceAddress          string          `yaml:"sourceAddress"`
	PeerPort               uint16          `yaml:"peerPort"`
	HoldTime               string          `yaml:"holdTime"`
	KeepaliveTime          string          `yaml:"keepaliveTime"`
	ConnectTime            string          `yaml:"connectTime"`
	RouterID               string          `yaml:"routerID"`
	NodeSelectors          []labelSelector `yaml:"nodeSelectors"`
	Password               string          `yaml:"password"`
	PasswordSecret         secretRef       `yaml:"passwordSecret"`
	BFDProfile             string          `yaml:"bfdProfile"`
	EnableGracefulRestart  bool            `yaml:"enableGracefulRestart"`
	EBGPMultiHop           bool            `yaml:"ebgpMultiHop"`
	VRF                    string          `yaml:"vrf"`
	DisableMP              bool            `yaml:"disableMP"`
	DualStackAddressFamily bool            `yaml:"dualStackAddressFamily"`
}

type secretRef struct {
	Name      string `yaml:"name"`
	Namespace string `yaml:"namespace"`
}

type communitySpec struct {
	Communities []communityAlias `yaml:"communities"`
}

type communityAlias struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// bfdProfileSpec is a BFDProfile: intervals in milliseconds.
type bfdProfileSpec struct {
	ReceiveInterval  *uint32 `yaml:"receiveInterval"`
	TransmitInterval *uint32 `yaml:"transmitInterval"`
	DetectMultiplier *uint32 `yaml:"detectMultiplier"`
	EchoInterval     *uint32 `yaml:"echoInterval"`
	EchoMode         *bool   `yaml:"echoMode"`
	PassiveMode      *bool   `yaml:"passiveMode"`
	MinimumTTL       *uint32 `yaml:"minimumTtl"`
}

// Kinds of metallb.io objects.
const (
	kindPool       = "IPAddressPool"
	kindL2Adv      = "L2Advertisement"
	kindBGPAdv     = "BGPAdvertisement"
	kindPeer       = "BGPPeer"
	kindCommunity  = "Community"
	kindBFDProfile = "BFDProfile"
)

// newSpec returns a pointer to the spec struct of a converted kind, or nil.
func newSpec(kind string) any {
	switch kind {
	case kindPool:
		return new(ipAddressPoolSpec)
	case kindL2Adv:
		return new(l2AdvertisementSpec)
	case kindBGPAdv:
		return new(bgpAdvertisementSpec)
	case kindPeer:
		return new(bgpPeerSpec)
	case kindCommunity:
		return new(communitySpec)
	case kindBFDProfile:
		return new(bfdProfileSpec)
	}
	return nil
}

// isStatusKind reports MetalLB objects that report state rather than
// configure anything; `kubectl get -o yaml` of everything includes them,
// and they are skipped without a warning.
func isStatusKind(kind string) bool {
	switch kind {
	case "ServiceL2Status", "ServiceBGPStatus", "ConfigurationState":
		return true
	}
	return false
}

// object is one MetalLB resource read from the input.
type object struct {
	Kind    string
	Version string // v1beta1 or v1beta2
	Meta    meta
	Spec    any // one of the *Spec structs above
	// Where it was read, "FILE:LINE", for messages about duplicates.
	Where string
}

// ID names the object in messages, as kind/name.
func (o *object) ID() string { return printable(o.Kind) + "/" + printable(o.Meta.Name) }

// printable quotes s when it holds spaces or unprintable characters, so
// that text from the input cannot break or forge lines of messages.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r == ' ' || !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}
