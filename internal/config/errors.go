package config

import (
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Error is one problem in a configuration file. Its text names the file,
// line, field and offending value, and says what would be valid:
//
//	/etc/lbd.yaml:14:7: pools[0].addresses[0] "192.0.2.20-192.0.2.10": range start is after its end; did you mean 192.0.2.10-192.0.2.20?
type Error struct {
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"` // 0 when the problem has no single place
	Column int    `json:"column,omitempty"`
	Field  string `json:"field,omitempty"` // dotted path, e.g. bgp.peers[0].hold_time
	Value  string `json:"value,omitempty"` // the offending value as written, if any (clipped; never a secret)
	Msg    string `json:"message"`
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Column)
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		if e.Value != "" {
			fmt.Fprintf(&b, " %q", e.Value)
		}
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file, in file order. Load returns it
// (as an error) when a file was read but is not a valid configuration.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// validator collects errors and knows where each field was written.
type validator struct {
	file string
	pos  map[string]*yaml.Node
	errs Errors
	// bad holds fields whose value was already reported while decoding,
	// so that validation does not report them again as missing.
	bad map[string]bool
	// structural is set when the file's shape is wrong (a manifest, a
	// section whose keys are not indented under it, too many nodes):
	// validation would only add follow-on errors, so it does not run.
	structural bool
	// limited is set when a limit was hit; nothing more is reported.
	limited bool
	// warnings are legal but probably wrong; skipped are the checks of
	// the machine that were not made (Options.Offline).
	warnings Errors
	skipped  []string
	// nulls holds the keys written with no value (they keep their
	// defaults), where they were written.
	nulls map[string]*yaml.Node
}

// warnf records a warning on field, placed where the field was written.
func (v *validator) warnf(field, value, format string, args ...any) {
	v.warnings = append(v.warnings, v.placed(field, value, format, args...))
}

// placed makes an Error on field, placed where the field (or its nearest
// written parent) is in the file.
func (v *validator) placed(field, value, format string, args ...any) *Error {
	e := &Error{File: v.file, Field: field, Value: clip(value), Msg: fmt.Sprintf(format, args...)}
	for p := field; ; p = parent(p) {
		if n, ok := v.pos[p]; ok {
			e.Line, e.Column = n.Line, n.Column
			break
		}
		if p == "" {
			break
		}
	}
	return e
}

func newValidator(file string) *validator {
	return &validator{file: file, pos: map[string]*yaml.Node{}, bad: map[string]bool{}, nulls: map[string]*yaml.Node{}}
}

// record notes where path was written; the first record wins so that a
// field's position is its key, not its value.
func (v *validator) record(path string, n *yaml.Node) {
	if _, ok := v.pos[path]; !ok {
		v.pos[path] = n
	}
}

// limit makes e the only problem: a structural limit was hit, and what
// else was found (or would be) is not worth reading.
func (v *validator) limit(e *Error) {
	v.errs = Errors{e}
	v.structural, v.limited = true, true
}

// errorAt reports a problem at a known node.
func (v *validator) errorAt(n *yaml.Node, field, value, format string, args ...any) {
	if v.limited {
		return
	}
	v.bad[field] = true
	v.errs = append(v.errs, &Error{
		File: v.file, Line: n.Line, Column: n.Column,
		Field: field, Value: clip(value), Msg: fmt.Sprintf(format, args...),
	})
}

// errorf reports a problem with a field, placed where the field (or its
// nearest written parent) is in the file.
func (v *validator) errorf(field, value, format string, args ...any) {
	if v.limited {
		return
	}
	for p := field; p != ""; p = parent(p) {
		if v.bad[p] {
			return
		}
	}
	v.errs = append(v.errs, v.placed(field, value, format, args...))
}

// maxValue is the longest value a message quotes whole: a pasted
// certificate or key is named by its start and size, not echoed.
const maxValue = 64

// clip shortens a long value for a message.
func clip(value string) string {
	if len(value) <= maxValue {
		return value
	}
	cut := maxValue - 16
	for cut > 0 && !utf8.RuneStart(value[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d bytes)", value[:cut], len(value))
}

// parent strips the last component of a dotted/indexed path.
func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// MaxErrors is how many problems one file reports at most; the rest are
// counted in a last line. A generated file with thousands of mistakes
// (one per line) would otherwise bury the first ones.
const MaxErrors = 50

func (v *validator) result() error {
	if len(v.errs) == 0 {
		return nil
	}
	sort.SliceStable(v.errs, func(i, j int) bool {
		a, b := v.errs[i], v.errs[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
	if n := len(v.errs); n > MaxErrors {
		v.errs = append(v.errs[:MaxErrors:MaxErrors], &Error{File: v.file,
			Msg: fmt.Sprintf("and %d more problems not shown; fix these first", n-MaxErrors)})
	}
	return v.errs
}
