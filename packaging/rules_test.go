package packaging

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestPromtoolCheckRules(t *testing.T) {
	pt := promtool(t)
	out, err := run(t, "prometheus", nil, pt, "check", "rules", "lbd.rules.yml")
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestPromtoolTestRules(t *testing.T) {
	t.Parallel()
	pt := promtool(t)
	out, err := run(t, "prometheus", nil, pt, "test", "rules", "lbd.rules.test.yml")
	if err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestPromtoolTestRulesCanFail: the unit tests catch a broken rule. A
// copy of the rules with one threshold changed must fail them.
func TestPromtoolTestRulesCanFail(t *testing.T) {
	t.Parallel()
	pt := promtool(t)
	rules, err := os.ReadFile("prometheus/lbd.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("prometheus/lbd.rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	const from, to = "lbd_bgp_session_up == 0", "lbd_bgp_session_up == 2"
	if !strings.Contains(string(rules), from) {
		t.Fatalf("lbd.rules.yml has no %q to break", from)
	}
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/lbd.rules.yml", []byte(strings.Replace(string(rules), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/lbd.rules.test.yml", tests, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, dir, nil, pt, "test", "rules", "lbd.rules.test.yml")
	if err == nil {
		t.Fatalf("promtool test rules passed with %q changed to %q:\n%s", from, to, out)
	}
	if !strings.Contains(out, "LbdBGPSessionDown") {
		t.Errorf("the failure does not name LbdBGPSessionDown:\n%s", out)
	}
}

// TestEveryAlertTested: each alert of lbd.rules.yml fires in at least one
// unit test case (it has expected alerts), so none is left untested.
func TestEveryAlertTested(t *testing.T) {
	rules, err := os.ReadFile("prometheus/lbd.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("prometheus/lbd.rules.test.yml")
	if err != nil {
		t.Fatal(err)
	}
	firing := map[string]bool{}
	// "alertname: X" followed, before the next case, by "exp_labels".
	for _, c := range strings.Split(string(tests), "- eval_time:")[1:] {
		if m := regexp.MustCompile(`alertname: (\w+)`).FindStringSubmatch(c); m != nil && strings.Contains(c, "exp_labels:") {
			firing[m[1]] = true
		}
	}
	alerts := regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(string(rules), -1)
	if len(alerts) < 8 {
		t.Fatalf("found %d alerts in lbd.rules.yml, want at least 8", len(alerts))
	}
	for _, a := range alerts {
		if !firing[a[1]] {
			t.Errorf("alert %s never fires in lbd.rules.test.yml", a[1])
		}
	}
}
