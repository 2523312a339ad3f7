// Command testreport reads `go test -json` on stdin and prints what a plain
// `go test` prints (a line per package, the whole output of every failed
// test), then every skipped test with its reason. It exits 1 when a test or
// a package failed, or when a test skipped that the allow file does not
// list: in CI a silent skip is a test that did not run.
//
// The allow file has one test per line, "package TestName[/subtest]", with
// # comments. A listed test that did not skip fails the run too, so the
// list cannot rot.
//
// At the end it lists the slowest top-level tests, so a run says where its
// minutes went.
//
// Usage: go test -json ./... 2>&1 | go run ./hack/testreport -allow FILE
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type key struct{ pkg, test string }

type report struct {
	out      io.Writer
	output   map[key][]string // output of each test (and package) so far
	skipped  map[key]string   // skipped test → its last line of output
	failed   []key
	pkgFail  bool
	lastLine map[key]string
	elapsed  map[key]float64  // top-level tests that passed or failed
	why      map[key][]string // a failed test's own messages, first lines
}

func newReport(out io.Writer) *report {
	return &report{out: out, output: map[key][]string{}, skipped: map[key]string{}, lastLine: map[key]string{}, elapsed: map[key]float64{}, why: map[key][]string{}}
}

// add takes one line of input.
func (r *report) add(line []byte) {
	var e event
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
		// Not JSON: a build error or a panic outside a test.
		fmt.Fprintln(r.out, string(line))
		return
	}
	k := key{e.Package, e.Test}
	if (e.Action == "pass" || e.Action == "fail") && e.Test != "" && !strings.Contains(e.Test, "/") {
		r.elapsed[k] = e.Elapsed
	}
	switch e.Action {
	case "output", "build-output":
		r.output[k] = append(r.output[k], e.Output)
		if s := strings.TrimSpace(e.Output); s != "" && !strings.HasPrefix(s, "---") && !strings.HasPrefix(s, "===") {
			r.lastLine[k] = s
		}
	case "skip":
		if e.Test != "" {
			r.skipped[k] = r.lastLine[k]
		}
		delete(r.output, k)
	case "pass":
		delete(r.output, k)
		if e.Test == "" {
			fmt.Fprintf(r.out, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
	case "fail":
		if e.Test != "" {
			r.failed = append(r.failed, k)
			r.why[k] = messages(r.output[k], 8)
			fmt.Fprint(r.out, strings.Join(r.output[k], ""))
			delete(r.output, k)
			return
		}
		r.pkgFail = true
		// A package that failed outside any test (a panic, a timeout, a
		// build error) has its reason in the package's own output.
		out := strings.Join(r.output[k], "")
		fmt.Fprint(r.out, out)
		if !strings.Contains(out, "FAIL\t"+e.Package) {
			fmt.Fprintf(r.out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
		delete(r.output, k)
	}
}

// messages returns the first line of each of the last n messages a test
// printed itself (t.Error, t.Log: "    file_test.go:12: ..."), each cut to
// 240 bytes. The whole output is above, but a failed lab test's output
// ends with the logs of its daemons: at the end of the run, these lines
// say why each test failed.
func messages(output []string, n int) []string {
	var out []string
	for _, o := range output {
		m := messageRE.FindStringSubmatch(strings.TrimRight(o, "\n"))
		if m == nil {
			continue
		}
		s := m[1]
		if len(s) > 240 {
			s = s[:240] + "..."
		}
		out = append(out, s)
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// messageRE is a line a test printed itself, indented once under its
// name; the indented lines below it continue the message.
var messageRE = regexp.MustCompile(`^    (\S+\.go:\d+: .*)$`)

// slowest prints the n slowest top-level tests.
func (r *report) slowest(n int) {
	keys := make([]key, 0, len(r.elapsed))
	for k := range r.elapsed {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return r.elapsed[keys[i]] > r.elapsed[keys[j]] })
	if len(keys) > n {
		keys = keys[:n]
	}
	fmt.Fprintf(r.out, "== the %d slowest tests\n", len(keys))
	for _, k := range keys {
		fmt.Fprintf(r.out, "%7.1fs %s %s\n", r.elapsed[k], k.pkg, k.test)
	}
}

// allowList reads the allow file.
func allowList(path string) (map[key]bool, error) {
	allow := map[key]bool{}
	if path == "" {
		return allow, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for i, line := range strings.Split(string(b), "\n") {
		if c := strings.IndexByte(line, '#'); c >= 0 {
			line = line[:c]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"package TestName\", got %q", path, i+1, line)
		}
		allow[key{f[0], f[1]}] = true
	}
	return allow, nil
}

// finish prints the skips and returns whether the run passed.
func (r *report) finish(allow map[key]bool) bool {
	ok := !r.pkgFail && len(r.failed) == 0
	r.slowest(15)
	keys := make([]key, 0, len(r.skipped))
	for k := range r.skipped {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].pkg != keys[j].pkg {
			return keys[i].pkg < keys[j].pkg
		}
		return keys[i].test < keys[j].test
	})
	unlisted := 0
	fmt.Fprintf(r.out, "== %d skipped tests\n", len(keys))
	for _, k := range keys {
		mark := "allowed"
		if !allow[k] {
			mark = "NOT ALLOWED"
			unlisted++
		}
		fmt.Fprintf(r.out, "%-11s %s %s: %s\n", mark, k.pkg, k.test, r.skipped[k])
	}
	var stale []string
	for k := range allow {
		if _, ok := r.skipped[k]; !ok {
			stale = append(stale, k.pkg+" "+k.test)
		}
	}
	sort.Strings(stale)
	for _, s := range stale {
		fmt.Fprintf(r.out, "FAIL: allowed to skip, but ran or does not exist (remove it from the list): %s\n", s)
		ok = false
	}
	if unlisted > 0 {
		fmt.Fprintf(r.out, "FAIL: %d tests skipped that must run here\n", unlisted)
		ok = false
	}
	for _, k := range r.failed {
		fmt.Fprintf(r.out, "failed: %s %s\n", k.pkg, k.test)
		for _, m := range r.why[k] {
			fmt.Fprintf(r.out, "    %s\n", m)
		}
	}
	return ok
}

func main() {
	allowFile := flag.String("allow", "", "file of tests allowed to skip")
	flag.Parse()
	allow, err := allowList(*allowFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	r := newReport(os.Stdout)
	start := time.Now()
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		r.add(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if !r.finish(allow) {
		os.Exit(1)
	}
	fmt.Printf("== all tests ran and passed (%s)\n", time.Since(start).Round(time.Second))
}
