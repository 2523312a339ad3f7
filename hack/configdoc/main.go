// Command configdoc writes the default column of docs/config.md's key
// tables from the code (config.DocDefaults): what lbd fills in for a key
// the file leaves out. `make docs` runs it; TestDocDefaultsFromCode fails
// when the file differs from what it would write.
//
//	go run ./hack/configdoc [docs/config.md]
package main

import (
	"fmt"
	"os"

	"github.com/lbdproject/lbd/internal/config"
)

func main() {
	path := "docs/config.md"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
	out, err := config.WriteDocDefaults(doc)
	if err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}
