// Package owner is the pure choice of the node that announces a Service's
// layer-2 addresses: the recorded holder while it is a candidate, else
// rendezvous hashing with a seniority tier over the live set. It has no
// dependencies beyond the standard library, so the node agent's Plan
// stays free of Kubernetes client code.
package owner

import (
	"hash/fnv"
	"time"
)

// Candidate is a node that may announce a Service's addresses: alive,
// selected, not excluded or cordoned, with local endpoints if the Service
// asks for them. Since is when its current term of life began.
type Candidate struct {
	Node  string
	Since time.Time
}

// Choose picks the node that announces the addresses of the Service key
// (all of them, so a dual-stack Service's two addresses stay together).
// Every node computes the same answer from the same view, so no per-Service
// Lease is needed.
//
// holder is the owner recorded on the Service (its lbd.io/l2-owner
// annotation, written by each new owner). Unless failback is set, a
// holder that is still a candidate keeps the addresses: they move only
// when their owner stops being a candidate, whatever restarted since.
//
// Otherwise the choice is rendezvous hashing: the candidate with the
// highest score(key, node) wins, so losing a node moves only that node's
// Services, each to its own next-best node, and spreads them. Without
// failback, candidates whose term began before the Service was created
// (its "seniors") are tried first; that covers the moment before the
// first owner's record is written. failback drops both rules: the hash
// winner always owns. Choose returns "" when there is no candidate.
func Choose(key string, created time.Time, holder string, cands []Candidate, failback bool) string {
	if !failback && holder != "" {
		for _, c := range cands {
			if c.Node == holder {
				return holder
			}
		}
	}
	best, bestScore, bestSenior := "", uint64(0), false
	for _, c := range cands {
		senior := failback || !c.Since.After(created)
		s := score(key, c.Node)
		if best == "" || (senior && !bestSenior) || (senior == bestSenior && (s > bestScore || (s == bestScore && c.Node < best))) {
			best, bestScore, bestSenior = c.Node, s, senior
		}
	}
	return best
}

// score is a well-mixed 64-bit hash of (key, node), the same on every
// machine and version (FNV-1a, then the splitmix64 finaliser).
func score(key, node string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(node))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
