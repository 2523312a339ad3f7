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
// A run may measure some tests once more (scripts/test.sh runs the tests
// that failed beside others once more, alone): after the first run's JSON, a line that starts
// with "== rerun" and then the second run's JSON. A test the second run
// ran has that run's result instead of the first's, and the end of the
// report lists the tests run twice with both results. With -rerunnable,
// testreport reads a first run and prints what may be run again: a line
// per package, "package Test1|Test2", of the failed top-level tests of
// each package whose every failure is a test's own (a panic or a timeout
// ends tests that then never report, and is not run again).
//
// Usage: go test -json ./... 2>&1 | go run ./hack/testreport -allow FILE
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
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
	out     io.Writer
	output  map[key][]string // output of each test (and package) so far
	skipped map[key]string   // skipped test → its last line of output
	failed  []key
	pkgFail map[string]bool // packages failed, by import path
	running map[key]bool    // tests started and not ended
	// The second run (after a line starting with rerunMarker): the
	// top-level tests it ran, with how they ended in the first run and in
	// the second ("fail", "pass", "skip", or "" while running).
	rerun     bool
	rerunFrom map[key]string
	rerunTo   map[key]string
	lastLine  map[key]string
	elapsed   map[key]float64  // top-level tests that passed or failed
	why       map[key][]string // a failed test's own messages, first lines
}

func newReport(out io.Writer) *report {
	return &report{out: out, output: map[key][]string{}, skipped: map[key]string{}, lastLine: map[key]string{},
		elapsed: map[key]float64{}, why: map[key][]string{}, pkgFail: map[string]bool{}, running: map[key]bool{},
		rerunFrom: map[key]string{}, rerunTo: map[key]string{}}
}

// rerunMarker starts a line, not JSON, between a first run and the second
// run of some of its tests.
const rerunMarker = "== rerun"

// top is the top-level test a test or subtest belongs to.
func top(test string) string {
	t, _, _ := strings.Cut(test, "/")
	return t
}

// forget drops what the first run said of top-level test t and its
// subtests, when the second run starts it.
func (r *report) forget(t key) {
	from := "pass"
	r.failed = slices.DeleteFunc(r.failed, func(k key) bool {
		if k.pkg == t.pkg && top(k.test) == t.test {
			delete(r.why, k)
			if k.test == t.test {
				from = "fail"
			}
			return true
		}
		return false
	})
	if _, ok := r.skipped[t]; ok {
		from = "skip"
	}
	r.rerunFrom[t] = from
	r.rerunTo[t] = ""
}

// add takes one line of input.
func (r *report) add(line []byte) {
	var e event
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
		// Not JSON: a build error or a panic outside a test, or the
		// line before a second run.
		if strings.HasPrefix(string(line), rerunMarker) {
			r.rerun = true
		}
		fmt.Fprintln(r.out, string(line))
		return
	}
	k := key{e.Package, e.Test}
	if e.Test != "" {
		switch e.Action {
		case "run":
			if t := (key{e.Package, top(e.Test)}); r.rerun && e.Test == t.test {
				if _, ok := r.rerunTo[t]; !ok {
					r.forget(t)
				}
			}
			r.running[k] = true
		case "pass", "fail", "skip":
			delete(r.running, k)
			if _, ok := r.rerunTo[k]; ok && r.rerun {
				r.rerunTo[k] = e.Action
			}
		}
	}
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
		if e.Test == "" && r.rerun {
			// The second run ran the package's failed tests, which
			// were all its failures (-rerunnable): they passed. In the
			// first run, one go test of a package may pass and
			// another of it fail (scripts/test.sh runs the timing
			// labs apart): a pass undoes nothing there.
			delete(r.pkgFail, e.Package)
		}
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
		r.pkgFail[e.Package] = true
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

// rerunnable returns, for each failed package whose every started test
// ended, its failed top-level tests.
func (r *report) rerunnable() map[string][]string {
	out := map[string][]string{}
	for _, k := range r.failed {
		if k.test == top(k.test) && r.pkgFail[k.pkg] {
			out[k.pkg] = append(out[k.pkg], k.test)
		}
	}
	for k := range r.running {
		delete(out, k.pkg)
	}
	return out
}

// finish prints the skips and returns whether the run passed.
func (r *report) finish(allow map[key]bool) bool {
	ok := len(r.pkgFail) == 0 && len(r.failed) == 0
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
	if len(r.rerunTo) > 0 {
		keys := slices.SortedFunc(maps.Keys(r.rerunTo), func(a, b key) int {
			return cmp.Or(cmp.Compare(a.pkg, b.pkg), cmp.Compare(a.test, b.test))
		})
		fmt.Fprintf(r.out, "== %d tests run twice (the second run's result counts)\n", len(keys))
		for _, k := range keys {
			to := r.rerunTo[k]
			if to == "" {
				to = "did not end"
			}
			fmt.Fprintf(r.out, "%s, then %s: %s %s\n", r.rerunFrom[k], to, k.pkg, k.test)
		}
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
	rerunnable := flag.Bool("rerunnable", false, "print the failed tests that may run again, a line per package, and nothing else")
	flag.Parse()
	allow, err := allowList(*allowFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	r := newReport(os.Stdout)
	if *rerunnable {
		r.out = io.Discard
	}
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
	if *rerunnable {
		m := r.rerunnable()
		for _, pkg := range slices.Sorted(maps.Keys(m)) {
			fmt.Printf("%s %s\n", pkg, strings.Join(m[pkg], "|"))
		}
		return
	}
	if !r.finish(allow) {
		os.Exit(1)
	}
	if n := len(r.rerunTo); n > 0 {
		fmt.Printf("== all tests ran and passed (%s); %d of them failed in the first run and passed alone (listed above)\n", time.Since(start).Round(time.Second), n)
		return
	}
	fmt.Printf("== all tests ran and passed (%s)\n", time.Since(start).Round(time.Second))
}
