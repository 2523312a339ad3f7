package pool

import (
	"fmt"
	"testing"

	"github.com/lbdproject/lbd/internal/config"
)

// BenchmarkFill16 fills a /16 pool: 65 536 allocations per iteration.
func BenchmarkFill16(b *testing.B) {
	pools := []config.Pool{mustPool(b, "p", "10.0.0.0/16")}
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("default/s%d", i)
	}
	b.ReportAllocs()
	for b.Loop() {
		a := New(pools)
		for _, k := range keys {
			if _, err := a.Assign(svc(k), nil); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(keys)), "ns/alloc")
}

// BenchmarkAssignAt measures one Assign and one Release in a pool where n
// addresses were assigned and every other one freed again, so that it
// holds n/2 addresses as fragmented as they can be (n/2 spans): how the
// cost grows with what the pool holds. Sub-benchmarks are named by the
// addresses held.
func BenchmarkAssignAt(b *testing.B) {
	for _, tc := range []struct {
		pool string
		fam  Family
		n    int
	}{
		{"10.0.0.0/16", IPv4, 1_000},
		{"10.0.0.0/16", IPv4, 10_000},
		{"10.0.0.0/16", IPv4, 60_000},
		{"2001:db8::/64", IPv6, 1_000},
		{"2001:db8::/64", IPv6, 10_000},
		{"2001:db8::/64", IPv6, 100_000},
		{"2001:db8::/64", IPv6, 1_000_000},
	} {
		b.Run(fmt.Sprintf("%s/held=%d", tc.fam, tc.n/2), func(b *testing.B) {
			a := New([]config.Pool{mustPool(b, "p", tc.pool)})
			fam := dual(SingleStack, tc.fam)
			for i := 0; i < tc.n; i++ {
				if _, err := a.Assign(svc(fmt.Sprintf("default/s%d", i), fam), nil); err != nil {
					b.Fatal(err)
				}
			}
			for i := 0; i < tc.n; i += 2 {
				a.Release(fmt.Sprintf("default/s%d", i))
			}
			s := svc("default/bench", fam)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Assign(s, nil); err != nil {
					b.Fatal(err)
				}
				a.Release(s.Key)
			}
			b.ReportMetric(float64(a.pools[0].used.spans()), "spans")
		})
	}
}
