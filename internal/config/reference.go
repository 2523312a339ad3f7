package config

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"
)

// SchemaKeys lists every key of the schema as a dotted path, lists marked
// with [] (e.g. "bgp.peers[].hold_time"), in the order of the types.
func SchemaKeys() []string {
	var out []string
	walkSchema(reflect.TypeFor[Config](), reflect.Value{}, "", func(path string, _ reflect.Value) { out = append(out, path) })
	return out
}

// walkSchema calls visit with every key of the schema under t, in the
// order of the types, and with its value in v: the zero Value where v is
// invalid, a nil pointer or an empty list (a list is followed into its
// first element).
func walkSchema(t reflect.Type, v reflect.Value, prefix string, visit func(path string, v reflect.Value)) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		path := joinKey(prefix, tag)
		var fv reflect.Value
		if v.IsValid() {
			fv = v.Field(i)
		}
		visit(path, fv)
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
			if fv.IsValid() && fv.IsNil() {
				fv = reflect.Value{}
			} else if fv.IsValid() {
				fv = fv.Elem()
			}
		}
		switch {
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && !scalarType(ft.Elem()):
			var first reflect.Value
			if fv.IsValid() && fv.Len() > 0 {
				first = fv.Index(0)
			}
			walkSchema(ft.Elem(), first, path+"[]", visit)
		case ft.Kind() == reflect.Struct && !scalarType(ft):
			walkSchema(ft, fv, path, visit)
		}
	}
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// scalarType reports whether values of t are written as one YAML scalar.
func scalarType(t reflect.Type) bool {
	return t == addrType || t == reflect.TypeFor[time.Duration]() || reflect.PointerTo(t).Implements(unmarshalerType)
}

// fullExample has one of every optional section and list element, so that
// applyDefaults fills every key that has a default.
const fullExample = `version: 1
node: {name: n1}
control_plane: {addresses: [192.0.2.1], interface: eth0}
pools: [{name: p, addresses: [192.0.2.10/32]}]
l2: {advertisements: [{name: a, pools: [p]}]}
bgp:
  asn: 64500
  peers: [{name: r, address: 192.0.2.254, asn: 64501, bfd: {}}]
  advertisements: [{name: b, pools: [p]}]
peers: {key_file: /etc/lbd/peers.key}
`

// defaultWords are the defaults docs/config.md states in words: keys whose
// default is not one value lbd fills in (computed from other keys or the
// machine, a behaviour, or required). Every other key's default is the
// value applyDefaults gives it, formatted by formatDefault.
var defaultWords = map[string]string{
	"version":                                "required",
	"node":                                   "",
	"node.name":                              "lower-cased hostname",
	"kubernetes":                             "",
	"kubernetes.load_balancer_class":         "none",
	"kubernetes.allocator_lease":             "",
	"kubernetes.allocator_lease.namespace":   "`kubernetes.namespace`",
	"kubernetes.liveness":                    "",
	"control_plane":                          "absent",
	"control_plane.addresses":                "required",
	"control_plane.interface":                "required",
	"control_plane.local_api_server":         "`https://127.0.0.1:<port>`",
	"control_plane.lease":                    "",
	"control_plane.health":                   "",
	"control_plane.gratuitous":               "",
	"pools":                                  "empty",
	"pools[].name":                           "required",
	"pools[].addresses":                      "required",
	"pools[].auto_assign":                    "`true`",
	"pools[].namespaces":                     "all",
	"l2":                                     "",
	"l2.advertisements":                      "empty",
	"l2.advertisements[].name":               "required",
	"l2.advertisements[].pools":              "required",
	"l2.advertisements[].interfaces":         "see meaning",
	"l2.advertisements[].node_selector":      "all nodes",
	"l2.gratuitous":                          "",
	"l2.conflict_detection":                  "`true`",
	"l2.conflict_probe":                      "",
	"l2.exclude_interfaces":                  "pod, CNI and container links",
	"bgp":                                    "",
	"bgp.asn":                                "required with peers",
	"bgp.router_id":                          "node's address",
	"bgp.peers":                              "empty",
	"bgp.peers[].name":                       "required",
	"bgp.peers[].address":                    "required",
	"bgp.peers[].asn":                        "required",
	"bgp.peers[].keepalive":                  "`hold_time`/3",
	"bgp.peers[].source_address":             "chosen by the kernel",
	"bgp.peers[].password_file":              "none",
	"bgp.peers[].graceful_restart":           "",
	"bgp.peers[].graceful_restart.enabled":   "`true`",
	"bgp.peers[].bfd":                        "none",
	"bgp.peers[].node_selector":              "all nodes",
	"bgp.advertisements":                     "empty",
	"bgp.advertisements[].name":              "required",
	"bgp.advertisements[].pools":             "required",
	"bgp.advertisements[].local_preference":  "none",
	"bgp.advertisements[].communities":       "empty",
	"bgp.advertisements[].large_communities": "empty",
	"bgp.advertisements[].peers":             "all peers",
	"bgp.advertisements[].node_selector":     "all nodes",
	"peers":                                  "absent",
	"peers.key_file":                         "required",
	"peers.address":                          "the Node's InternalIP",
	"listen":                                 "",
	"log":                                    "",
}

// DocDefaults returns the default column of docs/config.md's tables, by
// key: the value lbd fills in when the file leaves the key out (formatted
// as the file would write it, in backquotes), or, for a key whose default
// is not one value, its words. Keys under a node selector have none.
// hack/configdoc writes the column from it; a test keeps the two equal.
func DocDefaults() (map[string]string, error) {
	c, err := Options{Offline: true, Hostname: func() (string, error) { return "n1", nil }}.Parse("defaults", []byte(fullExample))
	if err != nil {
		return nil, fmt.Errorf("the example behind the defaults does not load: %w", err)
	}
	values := map[string]reflect.Value{}
	walkSchema(reflect.TypeFor[Config](), reflect.ValueOf(c).Elem(), "", func(path string, v reflect.Value) {
		if v.IsValid() {
			values[path] = v
		}
	})
	out := map[string]string{}
	for _, k := range SchemaKeys() {
		if strings.Contains(k, "node_selector.") {
			continue
		}
		if w, ok := defaultWords[k]; ok {
			out[k] = w
			continue
		}
		v, ok := values[k]
		if !ok {
			return nil, fmt.Errorf("%s: no value in the defaults example and no words in defaultWords", k)
		}
		s, ok := formatDefault(v)
		if !ok {
			return nil, fmt.Errorf("%s: default %v cannot be written as one value; give it words in defaultWords", k, v)
		}
		out[k] = "`" + s + "`"
	}
	return out, nil
}

// formatDefault writes v as the file would: durations in whole seconds,
// or milliseconds below that.
func formatDefault(v reflect.Value) (string, bool) {
	if d, ok := reflect.TypeAssert[time.Duration](v); ok {
		if d%time.Second == 0 {
			return fmt.Sprintf("%ds", d/time.Second), true
		}
		return fmt.Sprintf("%dms", d/time.Millisecond), true
	}
	switch v.Kind() {
	case reflect.String:
		return v.String(), v.String() != ""
	case reflect.Bool:
		return fmt.Sprint(v.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprint(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprint(v.Uint()), true
	}
	if s, ok := reflect.TypeAssert[fmt.Stringer](v); ok && v.Kind() != reflect.Pointer {
		return s.String(), s.String() != ""
	}
	return "", false
}

// docRow is a row of docs/config.md's key tables: key, type, default,
// meaning.
var docRow = regexp.MustCompile("^(\\| `([^`]+)` \\|[^|]*\\|)([^|]*)(\\|.*)$")

// WriteDocDefaults returns docs/config.md (doc) with the default column of
// every key's row written from DocDefaults. It fails when a key of the
// schema has no row, or a row names no key.
func WriteDocDefaults(doc []byte) ([]byte, error) {
	defaults, err := DocDefaults()
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(doc), "\n")
	seen := map[string]bool{}
	var errs []error
	for i, l := range lines {
		m := docRow.FindStringSubmatch(l)
		if m == nil || strings.Count(l, "|")-strings.Count(l, "\\|") < 5 {
			continue // not a row, or a three-column table (gratuitous, selectors)
		}
		key := m[2]
		def, ok := defaults[key]
		if !ok {
			errs = append(errs, fmt.Errorf("docs/config.md:%d: `%s` is no key of the schema", i+1, key))
			continue
		}
		seen[key] = true
		cell := " "
		if def != "" {
			cell = " " + def + " "
		}
		lines[i] = m[1] + cell + m[4]
	}
	for _, k := range slices.Sorted(maps.Keys(defaults)) {
		if !seen[k] {
			errs = append(errs, fmt.Errorf("docs/config.md: no row for `%s`", k))
		}
	}
	return []byte(strings.Join(lines, "\n")), errors.Join(errs...)
}
