package pool

import (
	"errors"
	"fmt"
	"net/netip"
)

// Family is an address family.
type Family int

// Address families.
const (
	IPv4 Family = 4
	IPv6 Family = 6
)

func (f Family) String() string { return fmt.Sprintf("IPv%d", int(f)) }

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// FamilyPolicy mirrors a Service's spec.ipFamilyPolicy.
type FamilyPolicy int

// Family policies.
const (
	SingleStack FamilyPolicy = iota
	PreferDualStack
	RequireDualStack
)

// Port is one (protocol, port) pair a Service exposes.
type Port struct {
	Protocol string // TCP, UDP, SCTP
	Port     int32
}

// Service is what the allocator needs to know of a LoadBalancer Service,
// converted from the Kubernetes object at the informer boundary.
type Service struct {
	Key       string // namespace/name
	Namespace string
	// Families in order of preference (spec.ipFamilies); the first is the
	// primary family.
	Families []Family
	Policy   FamilyPolicy
	// Requested holds the addresses asked for (annotation or
	// spec.loadBalancerIP): at most one per family.
	Requested []netip.Addr
	// Pool is the pool asked for by annotation, if any.
	Pool string
	// SharingKey lets Services with the same key share an address.
	SharingKey string
	Ports      []Port
	// Local is externalTrafficPolicy: Local; Selector is the canonical
	// form of spec.selector, which must match to share an address then.
	Local    bool
	Selector string
}

// Assignment is the outcome for one Service.
type Assignment struct {
	Addrs []netip.Addr // in the order of the Service's families
	Pool  string       // the pool of the first address
}

// Reason says why a Service got no address; it becomes the reason of the
// Kubernetes Event and a metric label.
type Reason string

// Reasons for failing to allocate.
const (
	ReasonPoolExhausted         Reason = "PoolExhausted"
	ReasonNotAllowedInNamespace Reason = "NotAllowedInNamespace"
	ReasonAddressNotInAnyPool   Reason = "AddressNotInAnyPool"
	ReasonAddressInUse          Reason = "AddressInUse"
	ReasonSharingConflict       Reason = "SharingConflict"
	ReasonNoPoolForFamily       Reason = "NoPoolForFamily"
	ReasonUnknownPool           Reason = "UnknownPool"
	ReasonBadAnnotation         Reason = "BadAnnotation"
	ReasonAvoidedAddress        Reason = "AvoidedAddress"
	ReasonDualStackUnavailable  Reason = "DualStackUnavailable"
)

// Error is an allocation failure with its reason.
type Error struct {
	Reason Reason
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func fail(r Reason, format string, args ...any) error {
	return &Error{Reason: r, Msg: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the reason of an allocation error, or "".
func ReasonOf(err error) Reason {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return ""
}
