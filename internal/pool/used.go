package pool

import (
	"net/netip"

	"github.com/google/btree"
)

// span is an inclusive run of addresses of one family.
type span struct{ from, to netip.Addr }

func spanLess(a, b span) bool { return a.from.Less(b.from) }

// usedSet holds the taken addresses of one pool as disjoint, merged spans
// in a B-tree, so that finding the first free address, taking one and
// freeing one all cost O(log n) in the number of spans, and a /64 is never
// enumerated. Adjacent spans are always merged, which is what makes "the
// address after the span covering x" free by construction.
type usedSet struct {
	t *btree.BTreeG[span]
}

func newUsedSet() *usedSet {
	return &usedSet{t: btree.NewG(16, spanLess)}
}

// covering returns the span containing a, if any.
func (s *usedSet) covering(a netip.Addr) (span, bool) {
	var got span
	found := false
	s.t.DescendLessOrEqual(span{from: a}, func(sp span) bool {
		got, found = sp, true
		return false
	})
	if !found || got.to.Less(a) || got.from.BitLen() != a.BitLen() {
		return span{}, false
	}
	return got, true
}

// has reports whether a is taken.
func (s *usedSet) has(a netip.Addr) bool {
	_, ok := s.covering(a)
	return ok
}

// firstFree returns the lowest free address in [from, to].
func (s *usedSet) firstFree(from, to netip.Addr) (netip.Addr, bool) {
	cand := from
	if sp, ok := s.covering(cand); ok {
		cand = sp.to.Next()
		if !cand.IsValid() || cand.BitLen() != from.BitLen() {
			return netip.Addr{}, false // the span ran to the end of the family
		}
	}
	if to.Less(cand) {
		return netip.Addr{}, false
	}
	return cand, true
}

// add marks [from, to] taken. The caller guarantees none of it is.
func (s *usedSet) add(from, to netip.Addr) {
	merged := span{from, to}
	if prev := from.Prev(); prev.IsValid() && prev.BitLen() == from.BitLen() {
		if left, ok := s.covering(prev); ok {
			s.t.Delete(left)
			merged.from = left.from
		}
	}
	if next := to.Next(); next.IsValid() && next.BitLen() == to.BitLen() {
		if right, ok := s.t.Get(span{from: next}); ok {
			s.t.Delete(right)
			merged.to = right.to
		}
	}
	s.t.ReplaceOrInsert(merged)
}

// remove frees a, which the caller guarantees is taken.
func (s *usedSet) remove(a netip.Addr) {
	sp, ok := s.covering(a)
	if !ok {
		return
	}
	s.t.Delete(sp)
	if sp.from.Less(a) {
		s.t.ReplaceOrInsert(span{sp.from, a.Prev()})
	}
	if a.Less(sp.to) {
		s.t.ReplaceOrInsert(span{a.Next(), sp.to})
	}
}

// spans is the number of spans, for tests and benchmarks.
func (s *usedSet) spans() int { return s.t.Len() }
