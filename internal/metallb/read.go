package metallb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Input is one file of MetalLB YAML.
type Input struct {
	// Name is shown in messages and in the header of the output: a file
	// name, or "-" for standard input.
	Name string
	Data []byte
}

// InputError means an input cannot be read as MetalLB configuration at all:
// it is not YAML, a document in it is not a Kubernetes object, or no input
// holds a single MetalLB object.
type InputError struct {
	Name string // the input, as in Input.Name
	Line int    // 0 when the problem has no single place
	Msg  string
}

func (e *InputError) Error() string {
	name := e.Name
	if name == "-" {
		name = "<stdin>"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", name, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", name, e.Msg)
}

// read parses every input into c.objs. Documents that are not MetalLB
// configuration become warnings; YAML that cannot be read, or a document
// that is no Kubernetes object, is an InputError.
func (c *converter) read(inputs []Input) error {
	for _, in := range inputs {
		dec := yaml.NewDecoder(bytes.NewReader(in.Data))
		for {
			var doc yaml.Node
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return &InputError{Name: in.Name, Msg: "not YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
			}
			root := &doc
			if root.Kind == yaml.DocumentNode {
				if len(root.Content) == 0 {
					continue
				}
				root = root.Content[0]
			}
			if isNull(root) {
				continue // an empty document, e.g. after a trailing ---
			}
			if err := c.readObject(in.Name, root, false); err != nil {
				return err
			}
		}
	}
	c.checkNamespaces()
	if c.metallbSeen == 0 {
		msg := "no MetalLB configuration found (objects of apiVersion metallb.io/v1beta1 or metallb.io/v1beta2); export it with: kubectl get -n metallb-system ipaddresspools,l2advertisements,bgpadvertisements,bgppeers,communities,bfdprofiles -o yaml"
		if c.legacyConfigMap {
			msg = "found only MetalLB's ConfigMap configuration (MetalLB before v0.13), which this converter does not read; convert it to custom resources first with MetalLB's configmaptocrs tool, then convert those"
		}
		name := "input"
		if len(inputs) == 1 {
			name = inputs[0].Name
		}
		return &InputError{Name: name, Msg: msg}
	}
	return nil
}

// readObject reads one Kubernetes object, or the items of a List.
func (c *converter) readObject(file string, n *yaml.Node, inList bool) error {
	if n == nil || n.Kind != yaml.MappingNode {
		line := 0
		if n != nil {
			line = n.Line
		}
		return &InputError{Name: file, Line: line, Msg: "not a Kubernetes object (want a mapping with apiVersion and kind)"}
	}
	var h struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
	}
	if err := n.Decode(&h); err != nil || h.APIVersion == "" || h.Kind == "" {
		return &InputError{Name: file, Line: n.Line, Msg: "not a Kubernetes object: apiVersion and kind must be set"}
	}
	if h.Kind == "List" || strings.HasSuffix(h.Kind, "List") {
		items := mapValue(n, "items")
		switch {
		case inList:
			return &InputError{Name: file, Line: n.Line, Msg: "a List inside a List"}
		case items == nil || isNull(items):
			return nil
		case items.Kind != yaml.SequenceNode:
			return &InputError{Name: file, Line: items.Line, Msg: h.Kind + ": items is not a list"}
		}
		for _, it := range items.Content {
			if err := c.readObject(file, deref(it), true); err != nil {
				return err
			}
		}
		return nil
	}

	o := &object{Kind: h.Kind, Where: fmt.Sprintf("%s:%d", displayName(file), n.Line)}
	if md := mapValue(n, "metadata"); md != nil {
		if err := md.Decode(&o.Meta); err != nil {
			return &InputError{Name: file, Line: md.Line, Msg: h.Kind + ": metadata cannot be read: " + yamlErr(err)}
		}
	}
	group, version, _ := strings.Cut(h.APIVersion, "/")
	switch {
	case group != "metallb.io":
		if h.Kind == "ConfigMap" && mapValue(mapValue(n, "data"), "excludel2.yaml") != nil {
			c.readExcludeL2(o, value(mapValue(mapValue(n, "data"), "excludel2.yaml")))
			return nil
		}
		if h.Kind == "ConfigMap" && strings.Contains(value(mapValue(mapValue(n, "data"), "config")), "address-pools") {
			c.legacyConfigMap = true
			c.warn(o, "data.config", "MetalLB's ConfigMap configuration (before v0.13) is not read; convert it to custom resources with MetalLB's configmaptocrs tool and convert those")
			return nil
		}
		c.warn(o, "", "not a MetalLB object (apiVersion %s); ignored", h.APIVersion)
		return nil
	case isStatusKind(h.Kind):
		return nil
	}
	c.metallbSeen++
	switch {
	case version != "v1beta1" && version != "v1beta2":
		c.errorf(o, "apiVersion", "unsupported version %s; this converter reads metallb.io/v1beta1 and metallb.io/v1beta2 (upgrade MetalLB, or export with kubectl, which serves the current version)", h.APIVersion)
		return nil
	}
	o.Version = version
	o.Spec = newSpec(h.Kind)
	if o.Spec == nil {
		msg := "lbd has no equivalent of this kind; not converted"
		if h.Kind == "AddressPool" {
			msg = "the deprecated AddressPool is not converted; MetalLB v0.13+ turns it into an IPAddressPool and an advertisement, export those instead"
		}
		c.warn(o, "", "%s", msg)
		return nil
	}
	if o.Meta.Name == "" {
		c.errorf(o, "metadata.name", "missing; every MetalLB object needs a name")
		return nil
	}
	if spec := mapValue(n, "spec"); spec != nil && !isNull(spec) {
		if err := spec.Decode(o.Spec); err != nil {
			c.errorf(o, "spec", "cannot be read: %s", yamlErr(err))
			return nil
		}
		var unknown []string
		unknownKeys(spec, reflect.TypeOf(o.Spec), "spec", &unknown)
		for _, f := range unknown {
			c.warn(o, f, "not a field this converter knows (a newer MetalLB?); not carried over")
		}
	}
	for _, p := range c.objs {
		if p.Kind == o.Kind && p.Meta.Name == o.Meta.Name {
			c.errorf(o, "metadata.name", "defined twice (%s and %s); MetalLB reads one namespace, so give only the objects of its namespace", p.Where, o.Where)
			return nil
		}
	}
	c.objs = append(c.objs, o)
	return nil
}

// checkNamespaces warns when the objects come from several namespaces:
// MetalLB reads only the one it runs in, the converter reads them all.
func (c *converter) checkNamespaces() {
	var seen []string
	for _, o := range c.objs {
		if ns := o.Meta.Namespace; ns != "" && !contains(seen, ns) {
			seen = append(seen, ns)
		}
	}
	if len(seen) > 1 {
		c.warn(nil, "", "the objects come from %d namespaces (%s) and are all converted, but MetalLB reads only the namespace it runs in (usually metallb-system); give only that namespace's objects", len(seen), strings.Join(seen, ", "))
	}
}

// unknownKeys appends to out the path of every mapping key under n that the
// struct type t has no field for.
func unknownKeys(n *yaml.Node, t reflect.Type, path string, out *[]string) {
	n = deref(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			f, ok := fieldByTag(t, k)
			switch {
			case ok:
				unknownKeys(n.Content[i+1], f.Type, path+"."+k, out)
			case k != "<<":
				*out = append(*out, path+"."+k)
			}
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, e := range n.Content {
			unknownKeys(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

func fieldByTag(t reflect.Type, key string) (reflect.StructField, bool) {
	for f := range t.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// mapValue returns the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return deref(n.Content[i+1])
		}
	}
	return nil
}

// value returns a scalar's text, or "".
func value(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode {
		return ""
	}
	return n.Value
}

func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func yamlErr(err error) string {
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

func displayName(name string) string {
	if name == "-" {
		return "<stdin>"
	}
	return name
}

// readExcludeL2 reads MetalLB's excludel2 ConfigMap: the regular
// expressions of interfaces its L2 mode never announces on, which become
// l2.exclude_interfaces. MetalLB matches unanchored expressions; lbd
// anchors them, so "^docker.*" becomes "docker.*" and "eth9" ".*eth9.*".
func (c *converter) readExcludeL2(o *object, text string) {
	var spec struct {
		Exclude []string `yaml:"announcedInterfacesToExclude"`
	}
	if err := yaml.Unmarshal([]byte(text), &spec); err != nil {
		c.errorf(o, "data.excludel2.yaml", "cannot be read: %s", yamlErr(err))
		return
	}
	c.excludeL2, c.excludeFrom = nil, o
	for _, e := range spec.Exclude {
		if s, ok := strings.CutPrefix(e, "^"); ok {
			e = s
		} else {
			e = ".*" + e
		}
		if s, ok := strings.CutSuffix(e, "$"); ok {
			e = s
		} else if !strings.HasSuffix(e, ".*") {
			e += ".*"
		}
		c.excludeL2 = append(c.excludeL2, e)
	}
}
