package config

import (
	"encoding"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the work of decoding one file, aliases included, so a
// hostile or broken file cannot make the loader run away.
const maxNodes = 200_000

// decoder maps a yaml.Node tree onto the schema types strictly: unknown or
// repeated keys, wrong kinds and bad values are all errors, and decoding goes
// on after each so that every problem is reported at once. It records the
// position of every field it sees so that validation errors can point at
// lines too.
type decoder struct {
	v     *validator
	nodes int
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	addrType        = reflect.TypeFor[netip.Addr]()
	unmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func (d *decoder) decode(n *yaml.Node, out reflect.Value, path string) {
	d.nodes++
	if d.nodes > maxNodes {
		if d.nodes == maxNodes+1 {
			// A limit, not a mistake to list with others: it is the one
			// problem reported, and nothing more is looked at.
			d.v.limit(&Error{File: d.v.file, Line: n.Line, Column: n.Column,
				Msg: fmt.Sprintf("file is too large or too deeply aliased: more than %d YAML nodes (values, keys and aliases expanded); lbd reads nothing past this limit", maxNodes)})
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		d.decode(n.Alias, out, path)
		return
	}
	if isNull(n) {
		return // a key with no value keeps its default
	}
	d.v.record(path, n)
	t := out.Type()
	if t.Kind() == reflect.Pointer && !t.Implements(unmarshalerType) {
		if out.IsNil() {
			out.Set(reflect.New(t.Elem()))
		}
		d.decode(n, out.Elem(), path)
		return
	}
	if t == durationType {
		d.duration(n, out, path)
		return
	}
	if t == addrType {
		if d.scalar(n, path, "an IP address") {
			a, err := parsePlainAddr(n.Value)
			if err != nil {
				if p, perr := netip.ParsePrefix(n.Value); perr == nil {
					what := "this is one address"
					if strings.HasPrefix(path, "control_plane.addresses") {
						what = "a VIP is one address"
					}
					d.v.errorAt(n, path, n.Value, "%s; write %s without /%d", what, p.Addr(), p.Bits())
					return
				}
				d.v.errorAt(n, path, n.Value, "%v", err)
				return
			}
			out.Set(reflect.ValueOf(a))
		}
		return
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if !d.scalar(n, path, "a value") {
			return
		}
		u := out.Addr().Interface().(encoding.TextUnmarshaler)
		if err := u.UnmarshalText([]byte(n.Value)); err != nil {
			d.v.errorAt(n, path, n.Value, "%v", err)
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		d.structure(n, out, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.v.errorAt(n, path, value(n), "want a list (one '- item' per line, or [a, b]), got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			if isNull(c) {
				d.v.errorAt(c, ip, "", "an empty list item (a '-' with nothing after it, often left by a template); remove it or give it a value")
				continue
			}
			d.decode(c, s.Index(i), ip)
		}
		out.Set(s)
	case reflect.Map:
		d.stringMap(n, out, path)
	case reflect.String:
		if d.scalar(n, path, "a string") {
			out.SetString(n.Value)
		}
	case reflect.Bool:
		if !d.scalar(n, path, "true or false") {
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if n.Tag != "!!bool" || err != nil {
			if n.Tag == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 && (n.Value == "true" || n.Value == "false") {
				d.v.errorAt(n, path, n.Value, "true or false in quotes is a string; remove the quotes")
				return
			}
			d.v.errorAt(n, path, n.Value, "want true or false")
			return
		}
		out.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Uint16, reflect.Uint32:
		d.integer(n, out, path)
	default:
		panic(fmt.Sprintf("config: no decoder for %s at %s", t, path))
	}
}

func (d *decoder) structure(n *yaml.Node, out reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.v.errorAt(n, path, value(n), "want a mapping of keys (key: value), got %s", kindName(n))
		return
	}
	fields := yamlFields(out.Type())
	if path == "" && d.manifest(n) {
		return
	}
	// Sections written with nothing under them: a key of theirs found
	// at this level was probably meant to be indented under them.
	empty := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if _, ok := fields[n.Content[i].Value]; ok && isNull(n.Content[i+1]) {
			empty[n.Content[i].Value] = n.Content[i]
		}
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Value == "<<" {
			d.v.errorAt(k, path, "<<", "YAML merge keys are not supported; write the keys out")
			continue
		}
		p := join(path, k.Value)
		if prev, dup := seen[k.Value]; dup {
			d.v.errorAt(k, p, k.Value, "key given twice (first on line %d)", prev.Line)
			continue
		}
		seen[k.Value] = k
		idx, ok := fields[k.Value]
		// A key of this level with a list where a mapping belongs, which
		// an empty section above also has (bgp's peers written
		// unindented, where the top level has peers of its own): the
		// same mistake as an unknown key.
		wrongShape := ok && val.Kind == yaml.SequenceNode && out.Type().Field(idx).Type.Kind() != reflect.Slice
		if !ok || wrongShape {
			if sec, at := misplaced(out.Type(), fields, empty, k.Value); sec != "" {
				where := path
				if where == "" {
					where = "the top level"
				}
				what := "unknown key"
				if wrongShape {
					what = "a list here, where this key takes a mapping"
				}
				d.v.errorAt(k, p, k.Value, "%s at %s; it belongs under %s, which is empty (line %d: '%s:' with nothing indented under it): indent it", what, where, sec, at.Line, sec)
				d.v.structural = true
				continue
			}
			if wrongShape {
				d.decode(val, out.Field(idx), p)
				continue
			}
			hint, meant := suggest(k.Value, keys(fields), path)
			d.v.errorAt(k, p, k.Value, "unknown key%s", hint)
			if meant != "" {
				// Say nothing more of the key the user meant to write.
				d.v.bad[join(path, meant)] = true
			}
			continue
		}
		if isNull(val) {
			d.v.nulls[p] = k
		}
		d.decode(val, out.Field(idx), p)
	}
}

// misplaced finds the empty section (in empty) whose own keys include key.
func misplaced(t reflect.Type, fields map[string]int, empty map[string]*yaml.Node, key string) (string, *yaml.Node) {
	for _, sec := range slices.Sorted(maps.Keys(empty)) {
		ft := t.Field(fields[sec]).Type
		for ft.Kind() == reflect.Pointer || ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() != reflect.Struct {
			continue
		}
		if _, ok := yamlFields(ft)[key]; ok {
			return sec, empty[sec]
		}
	}
	return "", nil
}

// manifest reports a Kubernetes manifest fed to lbd (MetalLB's custom
// resources, most likely) as the one problem with the file.
func (d *decoder) manifest(n *yaml.Node) bool {
	var kind, api *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		switch n.Content[i].Value {
		case "kind":
			kind = n.Content[i+1]
		case "apiVersion":
			api = n.Content[i+1]
		}
	}
	if kind == nil || api == nil {
		return false
	}
	d.v.errs = append(d.v.errs, &Error{File: d.v.file, Line: n.Line, Column: n.Column,
		Msg: fmt.Sprintf("this looks like a Kubernetes manifest (kind: %s), not /etc/lbd.yaml; convert MetalLB resources with `lbd import-metallb FILE` (docs/migrating.md)", value(kind))})
	d.v.structural = true
	return true
}

func (d *decoder) stringMap(n *yaml.Node, out reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.v.errorAt(n, path, value(n), "want a mapping of keys (key: value), got %s", kindName(n))
		return
	}
	m := reflect.MakeMap(out.Type())
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
			d.v.errorAt(k, p, k.Value, "key given twice")
			continue
		}
		d.v.record(p, k)
		if d.scalar(val, p, "a string") {
			m.SetMapIndex(reflect.ValueOf(k.Value), reflect.ValueOf(val.Value))
		}
	}
	out.Set(m)
}

func (d *decoder) duration(n *yaml.Node, out reflect.Value, path string) {
	if !d.scalar(n, path, "a duration") {
		return
	}
	if n.Tag == "!!int" || n.Tag == "!!float" {
		d.v.errorAt(n, path, n.Value, "a duration needs a unit, e.g. %ss or %sms", n.Value, n.Value)
		return
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		if m := daysRE.FindStringSubmatch(n.Value); m != nil {
			days, _ := strconv.Atoi(m[1])
			hours := days * 24
			if m[2] == "w" {
				hours *= 7
			}
			d.v.errorAt(n, path, n.Value, "Go durations have no days or weeks; write %dh", hours)
			return
		}
		d.v.errorAt(n, path, n.Value, "not a duration; write e.g. 500ms, 3s, 1m30s")
		return
	}
	if v < 0 {
		d.v.errorAt(n, path, n.Value, "a duration cannot be negative")
		return
	}
	out.SetInt(int64(v))
}

var (
	daysRE   = regexp.MustCompile(`^(\d+)([dw])$`)
	asdotRE  = regexp.MustCompile(`^(\d{1,5})\.(\d{1,5})$`)
	zeroedRE = regexp.MustCompile(`^[-+]?0[0-9_]+$`)
)

func (d *decoder) integer(n *yaml.Node, out reflect.Value, path string) {
	if !d.scalar(n, path, "a whole number") {
		return
	}
	if strings.HasSuffix(path, "asn") {
		if m := asdotRE.FindStringSubmatch(n.Value); m != nil {
			hi, _ := strconv.ParseUint(m[1], 10, 32)
			lo, _ := strconv.ParseUint(m[2], 10, 32)
			if hi <= 65535 && lo <= 65535 {
				d.v.errorAt(n, path, n.Value, "asdot notation; write the AS number as one number: %d", hi<<16|lo)
				return
			}
		}
	}
	if n.Tag != "!!int" {
		if _, err := strconv.ParseInt(n.Value, 10, 64); err == nil && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0 {
			d.v.errorAt(n, path, n.Value, "a number in quotes is a string; remove the quotes")
			return
		}
		d.v.errorAt(n, path, n.Value, "want a whole number")
		return
	}
	if zeroedRE.MatchString(n.Value) || strings.HasPrefix(strings.TrimLeft(n.Value, "+-"), "0o") {
		// YAML 1.1 reads 0644 as octal; nobody means that in this file.
		dec := strings.TrimLeft(strings.TrimLeft(strings.TrimPrefix(strings.TrimLeft(n.Value, "+-"), "0o"), "0"), "_")
		if dec == "" {
			dec = "0"
		}
		oct, _ := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		d.v.errorAt(n, path, n.Value, "a leading zero; write %s (YAML reads %s as the octal number %d)", dec, n.Value, oct)
		return
	}
	i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
	if err != nil {
		d.v.errorAt(n, path, n.Value, "number out of range")
		return
	}
	var lo, hi int64
	switch out.Kind() {
	case reflect.Uint16:
		lo, hi = 0, math.MaxUint16
	case reflect.Uint32:
		lo, hi = 0, math.MaxUint32
	default:
		lo, hi = math.MinInt32, math.MaxInt32
	}
	if i < lo || i > hi {
		d.v.errorAt(n, path, n.Value, "number out of range %d-%d", lo, hi)
		return
	}
	if out.CanUint() {
		out.SetUint(uint64(i))
	} else {
		out.SetInt(i)
	}
}

// scalar reports whether n is a plain value, recording an error if not.
func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.v.errorAt(n, path, value(n), "want %s, got %s", want, kindName(n))
		return false
	}
	return true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

func value(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return n.Value
	}
	return ""
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps each YAML key of struct type t to its field index.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		m[tag] = i
	}
	return m
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suggest names the closest known key, or lists them all. It returns the
// hint and the key it guessed, if any.
func suggest(got string, known []string, path string) (string, string) {
	norm := strings.ToLower(strings.ReplaceAll(got, "-", "_"))
	allowed := 1 // a typo in a short key, two in a longer one
	if len(norm) > 4 {
		allowed = 2
	}
	best, bestDist := "", allowed+1
	for _, k := range known {
		if d := editDistance(norm, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("; did you mean %q?", best), best
	}
	where := path
	if where == "" {
		where = "the top level"
	}
	return fmt.Sprintf("; keys allowed in %s: %s", where, strings.Join(known, ", ")), ""
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and swaps of neighbours cost 1.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
