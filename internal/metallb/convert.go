package metallb

import (
	"fmt"
	"strings"
)

// Problem is one thing the conversion could not carry over exactly, or
// could not do at all.
type Problem struct {
	// Object is the MetalLB object, as kind/name ("BGPPeer/tor-switch");
	// empty for a problem of the input as a whole.
	Object string
	// Field is the object's field, as MetalLB spells it ("spec.bfdProfile").
	Field string
	// Msg says what is wrong and what lbd does instead.
	Msg string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Object != "" {
		b.WriteString(p.Object)
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Result is a conversion.
type Result struct {
	// Config is the lbd configuration: YAML text with comments. When Errors
	// is not empty it is only a best effort and must not be used.
	Config []byte
	// Warnings lists every field that was changed or not carried over.
	Warnings []Problem
	// Errors lists what could not be converted, and every reason lbd's own
	// validation rejects Config.
	Errors []Problem
	// PasswordFiles are the password_file paths Config names; they hold
	// TCP MD5 passwords the operator must put on every node (mode 0600).
	PasswordFiles []string
	// Summary says in one line what was converted.
	Summary string
}

// Convert reads MetalLB configuration from the inputs, which together form
// one set of objects, and converts it to lbd's. An error (always an
// *InputError) means the inputs are not readable MetalLB configuration;
// problems with individual objects are in the Result.
func Convert(inputs ...Input) (*Result, error) {
	c := &converter{}
	if err := c.read(inputs); err != nil {
		return nil, err
	}
	c.readCommunities()
	c.readBFDProfiles()
	c.convertPools()
	c.convertPeers()
	c.convertL2()
	c.convertBGPAdvertisements()
	c.markAnnounced()
	text, origins := c.write(inputs)
	if len(c.errors) == 0 {
		c.check(text, origins)
	}
	return &Result{
		Config:        text,
		Warnings:      c.warnings,
		Errors:        c.errors,
		PasswordFiles: c.passwordFiles,
		Summary:       c.summary(),
	}, nil
}

// converter holds the state of one Convert call.
type converter struct {
	objs            []*object
	metallbSeen     int // metallb.io configuration objects read, converted or not
	legacyConfigMap bool
	warnings        []Problem
	errors          []Problem

	// communities maps alias names (and COMMUNITY.ALIAS) to values.
	communities map[string]string
	bfdProfiles map[string]*bfdProfile

	pools      []*outPool
	poolByName map[string]*outPool // by MetalLB name
	peers      []*outPeer
	peerNames  map[string]string // MetalLB name → lbd name, every BGPPeer
	asn        uint32
	asnFrom    *object
	routerID   string
	routerFrom *object
	l2         []*outL2
	bgpAds     []*outBGPAd

	names         map[string]map[string]*object // section → lbd name → source
	passwordFiles []string

	// excludeL2 is l2.exclude_interfaces from MetalLB's excludel2
	// ConfigMap (excludeFrom), nil without one.
	excludeL2   []string
	excludeFrom *object
}

// warn records a warning and returns its text for a comment in the output.
func (c *converter) warn(o *object, field, format string, args ...any) string {
	p := problem(o, field, format, args...)
	c.warnings = append(c.warnings, p)
	if field != "" {
		return field + ": " + p.Msg
	}
	return p.Msg
}

// errorf records a conversion error.
func (c *converter) errorf(o *object, field, format string, args ...any) {
	c.errors = append(c.errors, problem(o, field, format, args...))
}

func problem(o *object, field, format string, args ...any) Problem {
	p := Problem{Field: field, Msg: fmt.Sprintf(format, args...)}
	if o != nil {
		p.Object = o.ID()
	}
	return p
}

// objects returns the objects of one kind, in input order.
func (c *converter) objects(kind string) []*object {
	var out []*object
	for _, o := range c.objs {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// lbdName turns a MetalLB name (a DNS subdomain, up to 253 characters) into
// an lbd name (a DNS label, up to 63) unique within section, warning when
// it had to change it. suffix distinguishes advertisements split in several.
func (c *converter) lbdName(o *object, section, suffix, why string) (string, string) {
	name := sanitize(o.Meta.Name, 63-len(suffix)) + suffix
	var note string
	if name != o.Meta.Name+suffix {
		note = c.warn(o, "metadata.name", "%q is not a valid lbd name (lower-case letters, digits and '-', at most 63); written as %q%s", o.Meta.Name, name, why)
	}
	if c.names == nil {
		c.names = map[string]map[string]*object{}
	}
	if c.names[section] == nil {
		c.names[section] = map[string]*object{}
	}
	if prev, dup := c.names[section][name]; dup {
		c.errorf(o, "metadata.name", "becomes %q in lbd, as %s does; rename one of them", name, prev.ID())
	}
	c.names[section][name] = o
	return name, note
}

// sanitize maps s to lower-case letters, digits and '-', at most max long.
func sanitize(s string, max int) string {
	b := []byte(strings.ToLower(s))
	for i, ch := range b {
		if (ch < 'a' || ch > 'z') && (ch < '0' || ch > '9') {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "-")
	if len(out) > max {
		out = strings.TrimRight(out[:max], "-")
	}
	if out == "" {
		out = "unnamed"
	}
	return out
}

// nodeSelectors turns MetalLB's nodeSelectors (any one may match) into the
// selectors of lbd items: none means every node. An empty selector matches
// every node, and so does a list holding one.
func nodeSelectors(sels []labelSelector) []*labelSelector {
	var out []*labelSelector
	for i := range sels {
		if sels[i].empty() {
			return nil
		}
		out = append(out, &sels[i])
	}
	return out
}

// summary says what was converted, e.g. "1 pool, 1 L2 advertisement".
func (c *converter) summary() string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s%s", n, what, plural(n)))
		}
	}
	active := 0
	for _, p := range c.pools {
		if p.announced {
			active++
		}
	}
	add(active, "pool")
	add(len(c.l2), "L2 advertisement")
	add(len(c.peers), "BGP peer")
	add(len(c.bgpAds), "BGP advertisement")
	if len(parts) == 0 {
		parts = append(parts, "nothing")
	}
	return fmt.Sprintf("converted %d MetalLB object%s into %s; %d warning%s, %d error%s",
		len(c.objs), plural(len(c.objs)), strings.Join(parts, ", "),
		len(c.warnings), plural(len(c.warnings)), len(c.errors), plural(len(c.errors)))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
