package packaging

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// histograms are the names exported as Prometheus histograms, which
// queries use with _bucket, _sum and _count.
var histograms = []string{
	"lbd_control_plane_failover_seconds",
	"lbd_control_plane_lease_renew_seconds",
}

var (
	definedRE = regexp.MustCompile(`"(lbd_[a-z0-9_]+)"`)
	usedRE    = regexp.MustCompile(`\blbd_[a-z0-9_]+`)
)

// definedMetrics returns the lbd_ names that appear as string literals in
// the module's non-test Go sources, i.e. the names the daemon registers.
func definedMetrics(t *testing.T) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "testdata", "bin", "dist":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range definedRE.FindAllStringSubmatch(string(src), -1) {
			names = append(names, m[1])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// knownMetrics is every name a rule or dashboard may use.
func knownMetrics(t *testing.T) map[string]bool {
	known := map[string]bool{}
	for _, n := range definedMetrics(t) {
		known[n] = true
	}
	for _, h := range histograms {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			known[h+s] = true
		}
	}
	return known
}

// unknownMetrics returns the lbd_ names in text that known lacks.
func unknownMetrics(text string, known map[string]bool) []string {
	var bad []string
	for _, n := range usedRE.FindAllString(text, -1) {
		if !known[n] && !slices.Contains(bad, n) {
			bad = append(bad, n)
		}
	}
	return bad
}

func TestDefinedMetricsFound(t *testing.T) {
	// The scan must see the daemon's own names, or every check below
	// would rest on the planned list alone.
	got := definedMetrics(t)
	for _, want := range []string{"lbd_config_last_reload_successful", "lbd_pool_size_addresses", "lbd_allocation_failures_total", "lbd_build_info"} {
		if !slices.Contains(got, want) {
			t.Errorf("the scan of the Go sources missed %s; found %v", want, got)
		}
	}
}

func TestUnknownMetricsCaught(t *testing.T) {
	known := knownMetrics(t)
	expr := `sum(rate(lbd_bgp_updates_sent_total[5m])) / lbd_made_up_total + histogram_quantile(0.9, lbd_control_plane_failover_seconds_bucket) + lbd:pool_usage:ratio`
	if got := unknownMetrics(expr, known); !slices.Equal(got, []string{"lbd_made_up_total"}) {
		t.Errorf("unknownMetrics(%q) = %v, want [lbd_made_up_total]", expr, got)
	}
}

func TestRulesUseKnownMetrics(t *testing.T) {
	known := knownMetrics(t)
	for _, f := range []string{"prometheus/lbd.rules.yml", "prometheus/lbd.rules.test.yml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bad := unknownMetrics(string(data), known); len(bad) > 0 {
			t.Errorf("%s uses metrics lbd does not define: %v", f, bad)
		}
	}
}
