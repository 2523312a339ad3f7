package metallb

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing/fstest"

	"github.com/lbdproject/lbd/internal/config"
)

// check validates the converted text with lbd's own loader, the one `lbd
// check` and the daemon use, and turns each rejection into an error naming
// the MetalLB object and field it came from. The password files do not
// exist on the machine running the conversion, so the check pretends that
// each one the text names exists, holds a password and has mode 0600.
func (c *converter) check(text []byte, origins map[string]*object) {
	opts := config.Options{
		Hostname: func() (string, error) { return "import-metallb", nil },
		Open:     pretendPasswordFiles(c.passwordFiles),
	}
	_, err := opts.Parse("converted.yaml", text)
	if err == nil {
		return
	}
	var errs config.Errors
	if !errors.As(err, &errs) {
		c.errorf(nil, "", "lbd rejects the converted file: %v", err)
		return
	}
	for _, e := range errs {
		o, prefix := originOf(origins, e.Field)
		what := e.Field
		if e.Value != "" {
			what += fmt.Sprintf(" %q", e.Value)
		}
		if o == nil {
			c.errorf(nil, "", "lbd rejects the converted file: %s: %s", what, e.Msg)
			continue
		}
		c.errorf(o, metallbField(e.Field, prefix), "lbd rejects it as %s: %s", what, e.Msg)
	}
}

// originOf finds the object the longest written path prefix of field came
// from.
func originOf(origins map[string]*object, field string) (*object, string) {
	for p := field; p != ""; {
		if o, ok := origins[p]; ok {
			return o, p
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return nil, ""
}

// metallbField names the MetalLB field an lbd field was made from, e.g.
// bgp.peers[0].hold_time → spec.holdTime.
func metallbField(field, prefix string) string {
	switch field {
	case "bgp.asn":
		return "spec.myASN"
	case "bgp.router_id":
		return "spec.routerID"
	}
	key := strings.TrimPrefix(strings.TrimPrefix(field, prefix), ".")
	if i := strings.IndexAny(key, ".["); i >= 0 {
		key = key[:i]
	}
	switch key {
	case "name":
		return "metadata.name"
	case "pools":
		return "spec.ipAddressPools"
	case "node_selector":
		return "spec.nodeSelectors"
	case "asn":
		return "spec.peerASN"
	case "namespaces", "priority":
		return "spec.serviceAllocation." + key
	case "large_communities":
		return "spec.communities"
	}
	camel := map[string]string{
		"addresses": "addresses", "auto_assign": "autoAssign", "avoid_buggy_ips": "avoidBuggyIPs",
		"interfaces": "interfaces", "address": "peerAddress", "port": "peerPort",
		"hold_time": "holdTime", "keepalive": "keepaliveTime", "connect_retry": "connectTime",
		"source_address": "sourceAddress", "ebgp_multihop": "ebgpMultiHop", "password_file": "password",
		"graceful_restart": "enableGracefulRestart", "aggregation_length": "aggregationLength",
		"aggregation_length_v6": "aggregationLengthV6", "local_preference": "localPref",
		"communities": "communities", "peers": "peers",
	}[key]
	if camel == "" {
		return ""
	}
	return "spec." + camel
}

// pretendPasswordFiles opens each of names as a private file holding a
// password; any other name does not exist.
func pretendPasswordFiles(names []string) func(string) (fs.File, error) {
	m := fstest.MapFS{}
	for _, n := range names {
		m[strings.TrimPrefix(n, "/")] = &fstest.MapFile{Data: []byte("pretend-password\n"), Mode: 0o600}
	}
	return func(name string) (fs.File, error) {
		if !slices.Contains(names, name) {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return m.Open(strings.TrimPrefix(name, "/"))
	}
}
