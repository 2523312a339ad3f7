package packaging

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	GridPos struct{ H, W, X, Y int } `json:"gridPos"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile("grafana/lbd.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("grafana/lbd.json: %v", err)
	}
	return d
}

// TestDashboard checks the dashboard's shape: every panel queries the
// selected data source, has a unique id and fits the 24-column grid, and
// every lbd_ metric it uses is one lbd defines (TestMetricsMatchRulesAndDashboard
// in cmd/lbd checks them against a running lbd).
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both must be set", d.Title, d.UID)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" || vars["job"] == "" || vars["instance"] == "" {
		t.Errorf("templating variables %v: want datasource, job and instance", vars)
	}
	known := knownMetrics(t)
	ids := map[int]bool{}
	queries := 0
	for _, p := range d.Panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if ids[p.ID] {
			t.Errorf("%s: duplicate id", where)
		}
		ids[p.ID] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 || p.GridPos.H < 1 {
			t.Errorf("%s: gridPos %+v does not fit the 24-column grid", where, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource must be ${datasource}", where)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no queries", where)
		}
		for _, tg := range p.Targets {
			queries++
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: empty query", where)
			}
			if bad := unknownMetrics(tg.Expr, known); len(bad) > 0 {
				t.Errorf("%s: unknown metrics %v in %s", where, bad, tg.Expr)
			}
			if !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("%s: query ignores the job variable: %s", where, tg.Expr)
			}
		}
	}
	if queries < 20 {
		t.Errorf("%d queries; the dashboard lost panels", queries)
	}
}

// TestDashboardQueriesParse hands every query, with Grafana's variables
// replaced, to promtool as a recording rule: promtool rejects what
// Prometheus could not parse.
func TestDashboardQueriesParse(t *testing.T) {
	pt := promtool(t)
	d := loadDashboard(t)
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", "lbd", "$instance", ".+")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for _, p := range d.Panels {
		for i, tg := range p.Targets {
			if tg.Expr == "" {
				continue
			}
			q, _ := json.Marshal(vars.Replace(tg.Expr)) // a JSON string is a YAML string
			fmt.Fprintf(&b, "      - record: dashboard:panel_%d_%d\n        expr: %s\n", p.ID, i, q)
		}
	}
	f := filepath.Join(t.TempDir(), "dashboard.rules.yml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, ".", nil, pt, "check", "rules", "--lint=none", f); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
	// And the check can fail.
	if err := os.WriteFile(f, []byte("groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: \"sum(rate(lbd_build_info[5m])\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, ".", nil, pt, "check", "rules", f); err == nil {
		t.Fatalf("promtool accepted an unbalanced parenthesis:\n%s", out)
	}
}
