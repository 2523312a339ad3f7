package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const run = `{"Action":"start","Package":"a"}
{"Action":"run","Package":"a","Test":"TestOK"}
{"Action":"output","Package":"a","Test":"TestOK","Output":"=== RUN   TestOK\n"}
{"Action":"pass","Package":"a","Test":"TestOK/sub","Elapsed":0.05}
{"Action":"pass","Package":"a","Test":"TestOK","Elapsed":0.1}
{"Action":"run","Package":"a","Test":"TestRoot"}
{"Action":"output","Package":"a","Test":"TestRoot","Output":"    x_test.go:9: needs root\n"}
{"Action":"output","Package":"a","Test":"TestRoot","Output":"--- SKIP: TestRoot (0.00s)\n"}
{"Action":"skip","Package":"a","Test":"TestRoot","Elapsed":0}
{"Action":"run","Package":"a","Test":"TestBench"}
{"Action":"output","Package":"a","Test":"TestBench","Output":"    x_test.go:19: set LBD_BENCH\n"}
{"Action":"skip","Package":"a","Test":"TestBench","Elapsed":0}
{"Action":"pass","Package":"a","Elapsed":0.2}
`

const failing = `{"Action":"run","Package":"b","Test":"TestBad"}
{"Action":"output","Package":"b","Test":"TestBad","Output":"    b_test.go:3: got 1, want 2\n"}
{"Action":"output","Package":"b","Test":"TestBad","Output":"    lab_test.go:40: node-a's log:\n"}
{"Action":"output","Package":"b","Test":"TestBad","Output":"        x.go:1: not a message of the test\n"}
{"Action":"output","Package":"b","Test":"TestBad","Output":"        {\"level\":\"info\"}\n"}
{"Action":"fail","Package":"b","Test":"TestBad","Elapsed":0}
{"Action":"fail","Package":"b","Elapsed":0.2}
`

func feed(t *testing.T, in, allow string) (bool, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "allow")
	if err := os.WriteFile(path, []byte(allow), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := allowList(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	r := newReport(&out)
	for line := range strings.SplitSeq(in, "\n") {
		r.add([]byte(line))
	}
	return r.finish(list), out.String()
}

func TestSkips(t *testing.T) {
	ok, out := feed(t, run, "a TestBench # a benchmark\n")
	if ok {
		t.Errorf("an unlisted skip passed:\n%s", out)
	}
	for _, want := range []string{"NOT ALLOWED a TestRoot: x_test.go:9: needs root", "allowed     a TestBench", "ok  \ta\t0.200s", "== 2 skipped tests", "== the 1 slowest tests\n    0.1s a TestOK\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if ok, out := feed(t, run, "a TestBench\na TestRoot\n"); !ok {
		t.Errorf("listed skips failed:\n%s", out)
	}
	if ok, out := feed(t, run, "a TestBench\na TestRoot\na TestOK\n"); ok || !strings.Contains(out, "ran or does not exist") || !strings.Contains(out, "a TestOK") {
		t.Errorf("a listed test that ran passed:\n%s", out)
	}
}

func TestFailures(t *testing.T) {
	ok, out := feed(t, failing+"not json: build failed\n", "")
	if ok {
		t.Errorf("a failed test passed:\n%s", out)
	}
	for _, want := range []string{"got 1, want 2", "FAIL\tb", "not json: build failed",
		// At the very end: which test failed, and its own messages.
		"failed: b TestBad\n    b_test.go:3: got 1, want 2\n    lab_test.go:40: node-a's log:\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if _, err := allowList(writeTemp(t, "a b c\n")); err == nil {
		t.Error("a malformed allow line was accepted")
	}
}

func writeTemp(t *testing.T, s string) string {
	path := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A first run in which TestBad/sub failed (and so TestBad), TestGood passed.
const firstRun = `{"Action":"run","Package":"b","Test":"TestGood"}
{"Action":"pass","Package":"b","Test":"TestGood","Elapsed":1}
{"Action":"run","Package":"b","Test":"TestBad"}
{"Action":"run","Package":"b","Test":"TestBad/sub"}
{"Action":"output","Package":"b","Test":"TestBad/sub","Output":"    b_test.go:3: request failed after 2s\n"}
{"Action":"fail","Package":"b","Test":"TestBad/sub","Elapsed":2}
{"Action":"fail","Package":"b","Test":"TestBad","Elapsed":2}
{"Action":"fail","Package":"b","Elapsed":3}
`

func secondRun(result string) string {
	return `== rerun: the failed tests once more
{"Action":"run","Package":"b","Test":"TestBad"}
{"Action":"run","Package":"b","Test":"TestBad/sub"}
{"Action":"` + result + `","Package":"b","Test":"TestBad/sub","Elapsed":1}
{"Action":"` + result + `","Package":"b","Test":"TestBad","Elapsed":1}
{"Action":"` + result + `","Package":"b","Elapsed":1}
`
}

func TestRerun(t *testing.T) {
	ok, out := feed(t, firstRun+secondRun("pass"), "")
	if !ok || !strings.Contains(out, "== 1 tests run twice") || !strings.Contains(out, "fail, then pass: b TestBad\n") || strings.Contains(out, "failed: ") {
		t.Errorf("a test that failed, then passed when run again: ok=%v\n%s", ok, out)
	}
	ok, out = feed(t, firstRun+secondRun("fail"), "")
	if ok || !strings.Contains(out, "fail, then fail: b TestBad\n") || !strings.Contains(out, "failed: b TestBad\n") {
		t.Errorf("a test that failed twice: ok=%v\n%s", ok, out)
	}
	// Without the marker, a later pass does not undo a failure.
	if ok, out := feed(t, firstRun+strings.TrimPrefix(secondRun("pass"), "== rerun: the failed tests once more\n"), ""); ok {
		t.Errorf("a second run without the marker replaced the first:\n%s", out)
	}
	// In a first run, a package's failure outside any test (a timeout)
	// stays when another go test of the same package passes.
	timedOut := `{"Action":"run","Package":"c","Test":"TestSlow"}
{"Action":"fail","Package":"c","Elapsed":900}
{"Action":"run","Package":"c","Test":"TestTiming"}
{"Action":"pass","Package":"c","Test":"TestTiming","Elapsed":1}
{"Action":"pass","Package":"c","Elapsed":1}
`
	if ok, out := feed(t, timedOut, ""); ok {
		t.Errorf("a package that timed out passed when another run of it passed:\n%s", out)
	}
	// A second run that ends before the test does (its binary died).
	ok, out = feed(t, firstRun+"== rerun\n"+`{"Action":"run","Package":"b","Test":"TestBad"}
{"Action":"fail","Package":"b","Elapsed":1}
`, "")
	if ok || !strings.Contains(out, "fail, then did not end: b TestBad") {
		t.Errorf("a second run that did not end the test: ok=%v\n%s", ok, out)
	}
}

func rerunnable(in string) map[string][]string {
	r := newReport(io.Discard)
	for line := range strings.SplitSeq(in, "\n") {
		r.add([]byte(line))
	}
	return r.rerunnable()
}

func TestRerunnable(t *testing.T) {
	if got := rerunnable(firstRun + run); !reflect.DeepEqual(got, map[string][]string{"b": {"TestBad"}}) {
		t.Errorf("rerunnable = %v, want b's TestBad only", got)
	}
	// A panic in TestB ends the test binary while TestA runs: TestA never
	// reports, and running TestB alone would not run it.
	panicked := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"pause","Package":"p","Test":"TestA"}
{"Action":"run","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestB","Output":"panic: boom\n"}
{"Action":"fail","Package":"p","Test":"TestB","Elapsed":0.05}
{"Action":"fail","Package":"p","Elapsed":3}
`
	// A timeout fails the package and no test.
	timedOut := `{"Action":"run","Package":"q","Test":"TestD"}
{"Action":"output","Package":"q","Output":"panic: test timed out after 1s\n"}
{"Action":"fail","Package":"q","Elapsed":1}
`
	if got := rerunnable(panicked + timedOut); len(got) != 0 {
		t.Errorf("rerunnable = %v after a panic and a timeout, want nothing", got)
	}
}
