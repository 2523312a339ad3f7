package event

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestMessageIDs(t *testing.T) {
	seen := map[string]Class{}
	for class, id := range MessageIDs {
		if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
			t.Errorf("%s: MESSAGE_ID %q is not 128 bits of lower-case hex", class, id)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%s and %s share MESSAGE_ID %s", class, other, id)
		}
		seen[id] = class
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for class, id := range MessageIDs {
		if !regexp.MustCompile("(?m)^\\| `" + string(class) + "` \\|.*`" + id + "`").Match(doc) {
			t.Errorf("docs/operations.md has no table row for %s with MESSAGE_ID %s", class, id)
		}
	}
}

// TestClassesAreLogged keeps the table honest both ways: the code never
// logs an event class as a string literal (only through Attr and these
// constants, so a typo cannot compile), and every class with a
// MESSAGE_ID is logged somewhere outside this package.
func TestClassesAreLogged(t *testing.T) {
	literal := regexp.MustCompile(`"event",\s*"`)
	used := map[string]bool{}
	for _, dir := range []string{"../../cmd", "../../internal"} {
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			if filepath.Dir(path) == "." {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if literal.Match(src) {
				t.Errorf("%s logs an event class as a string literal; use event.Attr(event.X)", path)
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if id, ok := sel.X.(*ast.Ident); ok && id.Name == "event" {
						used[sel.Sel.Name] = true
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	consts := constNames(t)
	if len(consts) != len(MessageIDs) {
		t.Errorf("%d class constants but %d MESSAGE_IDs", len(consts), len(MessageIDs))
	}
	for _, name := range consts {
		if !used[name] {
			t.Errorf("event.%s has a MESSAGE_ID but nothing logs it: log it or remove it (and its row in docs/operations.md)", name)
		}
	}
}

// constNames lists the Class constants declared in this package.
func constNames(t *testing.T) []string {
	f, err := parser.ParseFile(token.NewFileSet(), "event.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, sp := range g.Specs {
			vs := sp.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "Class" {
				for _, n := range vs.Names {
					out = append(out, n.Name)
				}
			}
		}
	}
	return out
}
