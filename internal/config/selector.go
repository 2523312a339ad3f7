package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Selector picks nodes by their Kubernetes labels, with the semantics of a
// Kubernetes label selector: every match_labels entry and every expression
// must hold. A nil or empty Selector matches every node.
type Selector struct {
	MatchLabels      map[string]string `yaml:"match_labels"`
	MatchExpressions []Requirement     `yaml:"match_expressions"`
}

// Requirement is one match_expressions entry.
type Requirement struct {
	Key      string     `yaml:"key"`
	Operator SelectorOp `yaml:"operator"`
	Values   []string   `yaml:"values"`
}

// SelectorOp is a label selector operator.
type SelectorOp string

// Selector operators, spelt as in Kubernetes.
const (
	OpIn           SelectorOp = "In"
	OpNotIn        SelectorOp = "NotIn"
	OpExists       SelectorOp = "Exists"
	OpDoesNotExist SelectorOp = "DoesNotExist"
)

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *SelectorOp) UnmarshalText(b []byte) error {
	switch v := SelectorOp(b); v {
	case OpIn, OpNotIn, OpExists, OpDoesNotExist:
		*o = v
		return nil
	}
	return fmt.Errorf("unknown operator; use In, NotIn, Exists or DoesNotExist")
}

// Matches reports whether a node with these labels is selected.
func (s *Selector) Matches(labels map[string]string) bool {
	if s == nil {
		return true
	}
	for k, v := range s.MatchLabels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		v, ok := labels[r.Key]
		switch r.Operator {
		case OpIn:
			if !ok || !contains(r.Values, v) {
				return false
			}
		case OpNotIn:
			if ok && contains(r.Values, v) {
				return false
			}
		case OpExists:
			if !ok {
				return false
			}
		case OpDoesNotExist:
			if ok {
				return false
			}
		}
	}
	return true
}

func (s *Selector) String() string {
	if s == nil {
		return "all nodes"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		parts = append(parts, k+"="+s.MatchLabels[k])
	}
	for _, r := range s.MatchExpressions {
		switch r.Operator {
		case OpExists:
			parts = append(parts, r.Key)
		case OpDoesNotExist:
			parts = append(parts, "!"+r.Key)
		default:
			parts = append(parts, fmt.Sprintf("%s %s (%s)", r.Key, strings.ToLower(string(r.Operator)), strings.Join(r.Values, ",")))
		}
	}
	if len(parts) == 0 {
		return "all nodes"
	}
	return strings.Join(parts, ",")
}

func contains(list []string, s string) bool {
	return slices.Contains(list, s)
}

var (
	labelNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	labelValueRE = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$`)
	dns1123Sub   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// labelKeyProblem says why k is not a valid Kubernetes label key, or "".
func labelKeyProblem(k string) string {
	prefix, name, hasPrefix := strings.Cut(k, "/")
	if !hasPrefix {
		name, prefix = prefix, ""
	}
	if hasPrefix && (len(prefix) > 253 || !dns1123Sub.MatchString(prefix)) {
		return "label key prefix must be a DNS subdomain (e.g. example.com/role)"
	}
	if !labelNameRE.MatchString(name) {
		return "label key name must be 1-63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
	}
	return ""
}

// validate reports problems with a selector as (field suffix, value, message).
func (s *Selector) validate(v *validator, path string) {
	if s == nil {
		return
	}
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		if p := labelKeyProblem(k); p != "" {
			v.errorf(path+".match_labels."+k, k, "%s", p)
		}
		if val := s.MatchLabels[k]; !labelValueRE.MatchString(val) {
			v.errorf(path+".match_labels."+k, val, "label value must be at most 63 characters of letters, digits, '-', '_' or '.', starting and ending with a letter or digit")
		}
	}
	for i, r := range s.MatchExpressions {
		p := fmt.Sprintf("%s.match_expressions[%d]", path, i)
		if r.Key == "" {
			v.errorf(p+".key", "", "key is required")
		} else if msg := labelKeyProblem(r.Key); msg != "" {
			v.errorf(p+".key", r.Key, "%s", msg)
		}
		switch r.Operator {
		case "":
			v.errorf(p+".operator", "", "operator is required; use In, NotIn, Exists or DoesNotExist")
		case OpIn, OpNotIn:
			if len(r.Values) == 0 {
				v.errorf(p+".values", "", "operator %s needs at least one value", r.Operator)
			}
		case OpExists, OpDoesNotExist:
			if len(r.Values) != 0 {
				v.errorf(p+".values", strings.Join(r.Values, ","), "operator %s takes no values", r.Operator)
			}
		}
		for j, val := range r.Values {
			if !labelValueRE.MatchString(val) {
				v.errorf(fmt.Sprintf("%s.values[%d]", p, j), val, "not a valid label value")
			}
		}
	}
}
