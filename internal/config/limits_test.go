package config

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"testing"
)

// slash16 writes a pool holding 10.x.0.0/16 (x = 0) out address by
// address: 65,536 list items, 1.1 MB.
func slash16() []byte {
	var b strings.Builder
	b.WriteString("version: 1\npools:\n  - name: big\n    addresses:\n")
	a := netip.MustParseAddr("10.0.0.0")
	for range 1 << 16 {
		fmt.Fprintf(&b, "      - %s\n", a)
		a = a.Next()
	}
	b.WriteString("l2:\n  advertisements:\n    - {name: a, pools: [big]}\n")
	return []byte(b.String())
}

// TestSlash16AddressByAddress: a valid file listing 65,536 single
// addresses loads (it took 49s with the quadratic overlap check; the
// benchmark below measures it).
func TestSlash16AddressByAddress(t *testing.T) {
	c, err := testOptions.Parse("big.yaml", slash16())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Pools[0].Addresses); n != 1<<16 {
		t.Errorf("%d ranges, want 65536", n)
	}
}

// BenchmarkLoadSlash16 is `lbd check` on the /16 written out address by
// address. CI runs it and fails above its bound (scripts/bench.sh).
func BenchmarkLoadSlash16(b *testing.B) {
	data := slash16()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := testOptions.Parse("big.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAliasedPoolBounded: a small file that aliases one big pool hundreds
// of times (every range overlapping every copy) ends with a bounded
// list of problems and bounded memory; before, it built one error per
// overlapping pair and ran out of memory.
func TestAliasedPoolBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\npools:\n  - &p\n    name: p\n    addresses:\n")
	for i := range 250 {
		fmt.Fprintf(&b, "      - 192.0.2.%d\n", i)
	}
	for range 400 {
		b.WriteString("  - *p\n")
	}
	b.WriteString("l2:\n  advertisements:\n    - {name: a, pools: [p]}\n")
	if b.Len() > 16<<10 {
		t.Fatalf("the file is %d bytes; it should stay small", b.Len())
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := testOptions.Parse("aliased.yaml", []byte(b.String()))
	runtime.ReadMemStats(&after)
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want problems, got %v", err)
	}
	if len(errs) != MaxErrors+1 || !strings.Contains(errs[MaxErrors].Msg, "more problems not shown") {
		t.Errorf("%d problems, the last %q; want %d and a count of the rest", len(errs), errs[len(errs)-1], MaxErrors)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 512<<20 {
		t.Errorf("allocated %d MiB to judge a %d-byte file", alloc>>20, b.Len())
	}
}

// TestNodeLimitIsTheOneProblem: a file past the node limit gets that limit
// as its only problem, not a hundred thousand follow-on errors from a
// half-decoded tree (the limit came last before).
func TestNodeLimitIsTheOneProblem(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\npools:\n")
	for i := range 60_000 { // 4 decoded nodes each, 2.2 MB in all
		fmt.Fprintf(&b, "  - {name: p%d, addresses: [10.%d.%d.0/24]}\n", i, i>>8&255, i&255)
	}
	if b.Len() > MaxFileSize {
		t.Fatalf("the file is %d bytes, over the size limit; this test is about the node limit", b.Len())
	}
	_, err := testOptions.Parse("huge.yaml", []byte(b.String()))
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 1 || !strings.Contains(errs[0].Msg, "more than 200000 YAML nodes") {
		n := 0
		if errs != nil {
			n = len(errs)
		}
		t.Fatalf("%d problems, want exactly the node limit; first: %v", n, firstLine(err))
	}
}

// TestManyProblemsCapped: every problem past MaxErrors is counted, not
// listed.
func TestManyProblemsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("version: 1\npools:\n")
	for i := range 120 {
		fmt.Fprintf(&b, "  - {name: p%d, addresses: [192.0.2.300]}\n", i)
	}
	_, err := testOptions.Parse("many.yaml", []byte(b.String()))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatal(err)
	}
	if len(errs) != MaxErrors+1 || !strings.HasSuffix(errs[MaxErrors].Error(), "more problems not shown; fix these first") {
		t.Errorf("%d problems; last: %s", len(errs), errs[len(errs)-1])
	}
}

func firstLine(err error) string {
	if err == nil {
		return "<nil>"
	}
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}
