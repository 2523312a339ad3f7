package packaging

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

const roleDir = "ansible/roles/lbd"

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestArgumentSpecsCoverVariables: every variable of defaults/main.yml,
// and every lbd_ variable the role reads, has an entry in
// meta/argument_specs.yml, and the specs list nothing the role lacks.
func TestArgumentSpecsCoverVariables(t *testing.T) {
	var defaults map[string]any
	readYAML(t, filepath.Join(roleDir, "defaults/main.yml"), &defaults)
	var specs struct {
		ArgumentSpecs map[string]struct {
			Options map[string]struct {
				Type        string `yaml:"type"`
				Description any    `yaml:"description"`
			} `yaml:"options"`
		} `yaml:"argument_specs"`
	}
	readYAML(t, filepath.Join(roleDir, "meta/argument_specs.yml"), &specs)
	opts := specs.ArgumentSpecs["main"].Options
	if len(opts) == 0 {
		t.Fatal("meta/argument_specs.yml has no main options")
	}
	for name, o := range opts {
		if o.Type == "" || o.Description == nil {
			t.Errorf("argument spec %s needs a type and a description", name)
		}
		if _, ok := defaults[name]; !ok {
			t.Errorf("argument spec %s has no default in defaults/main.yml", name)
		}
	}
	for name := range defaults {
		if _, ok := opts[name]; !ok {
			t.Errorf("defaults/main.yml: %s has no argument spec", name)
		}
	}
	// Variables read by tasks, handlers and the template (registered
	// results end in _result and belong to the role).
	used := map[string]bool{}
	re := regexp.MustCompile(`\blbd_[a-z0-9_]+`)
	for _, dir := range []string{"tasks", "handlers", "templates"} {
		files, _ := filepath.Glob(filepath.Join(roleDir, dir, "*"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range re.FindAllString(string(data), -1) {
				if !strings.HasSuffix(v, "_result") {
					used[v] = true
				}
			}
		}
	}
	for _, v := range slices.Sorted(maps.Keys(used)) {
		if _, ok := opts[v]; !ok {
			t.Errorf("the role reads %s, which meta/argument_specs.yml lacks", v)
		}
	}
}

func TestAnsibleLint(t *testing.T) {
	lint := lookTool(t, "ansible-lint", "ansible-lint")
	out, err := run(t, "ansible", []string{"ANSIBLE_LINT_NODEPS=1"}, lint, "--offline", "--profile", "production", "roles/lbd", "playbooks/site.yml")
	if err != nil {
		t.Fatalf("ansible-lint: %v\n%s", err, out)
	}
}

func TestAnsibleSyntaxCheck(t *testing.T) {
	ap := lookTool(t, "ansible-playbook", "ansible")
	out, err := run(t, "ansible", nil, ap, "--syntax-check", "-i", "inventory/hosts.yml", "playbooks/site.yml")
	if err != nil {
		t.Fatalf("ansible-playbook --syntax-check: %v\n%s", err, out)
	}
}
