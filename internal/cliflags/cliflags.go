// Package cliflags reads back the flags a flag.FlagSet prints in its
// -h text (flag.PrintDefaults), for the parts that describe lbd's command
// line from the binary itself: shell completions (cmd/lbd), the man page
// lbd(8) (hack/man) and the docs test (packaging). One reader, so the
// three cannot disagree about what a flag is.
package cliflags

import (
	"regexp"
	"strings"
)

// Flag is one flag of a -h text.
type Flag struct {
	Name  string
	Arg   string // the value's name; "" for a boolean
	Usage string
}

// lineRE is the first line of a flag in flag.PrintDefaults: its name, its
// value's name, and for a one-letter boolean the usage on the same line.
var lineRE = regexp.MustCompile(`^  -([A-Za-z0-9-]+)(?: ([A-Za-z]+))?(?:\t(.*))?$`)

// Parse returns the flags of a -h text, in order.
func Parse(help string) []Flag {
	var out []Flag
	lines := strings.Split(help, "\n")
	for i, l := range lines {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		f := Flag{Name: m[1], Arg: m[2], Usage: m[3]}
		if f.Usage == "" && i+1 < len(lines) {
			f.Usage = strings.TrimSpace(lines[i+1])
		}
		out = append(out, f)
	}
	return out
}
