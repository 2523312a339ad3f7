package config

import "reflect"

// RestartOnly are the settings a running lbd cannot take by reload: a
// reload that changes one is refused, naming it, and the running
// configuration stays. docs/config.md and docs/ansible.md list them; a
// test keeps those lists equal to this one.
var RestartOnly = []struct {
	Key    string // as the docs name it
	Reason string // why, for the refusal
	Value  func(*Config) any
}{
	{"node.name", "a node cannot change its identity while running", func(c *Config) any { return c.Node.Name }},
	{"kubernetes", "connecting to the API anew (kubeconfig, namespace, Leases, class) takes a restart", func(c *Config) any { return c.Kubernetes }},
	{"peers", "the peer detector (key, address, port, timings) starts with the daemon", func(c *Config) any { return c.Peers }},
	{"listen.socket", "moving the control socket takes a restart", func(c *Config) any { return c.Listen.Socket }},
	{"log.format", "the log format is chosen at start", func(c *Config) any { return c.Log.Format }},
}

// RestartOnlyChanges returns the restart-only settings that differ
// between prev and next, in RestartOnly's order.
func RestartOnlyChanges(prev, next *Config) []int {
	var out []int
	for i, r := range RestartOnly {
		if !reflect.DeepEqual(r.Value(prev), r.Value(next)) {
			out = append(out, i)
		}
	}
	return out
}
