// Package metallb converts MetalLB configuration (the metallb.io custom
// resources IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer,
// Community and BFDProfile, versions v1beta1 and v1beta2, as files or as
// `kubectl get -o yaml` Lists) into an equivalent /etc/lbd.yaml.
//
// Convert is pure: bytes in, configuration text and a list of problems out.
// It reads no files and talks to no cluster; the output is validated with
// config.Options.Parse against a pretend machine on which the password files
// it asks for exist. Every MetalLB field that lbd cannot carry over exactly
// becomes a Problem naming the object (kind/name) and field and saying what
// lbd does instead; nothing is dropped silently. The package defines its own
// small structs for the CRDs and never imports k8s.io. It has no state
// outside one Convert call, so calls may run concurrently.
package metallb
