package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The lab tests that each build a network of their own run beside each
// other, labSlots at a time, longest first: the package's wall time is
// then about its longest lab, not the sum of the labs that happened to
// start last. go test's own -parallel must let every parallel test of
// the package through at once (scripts/test.sh passes -parallel 64):
// with 16, the light tests took the first places, the longest lab came
// in after four shorter ones had started, and waited 80 s for a slot.
// The slots are LBD_LAB_SLOTS
// (default 4, the most a 2-core machine runs without a lab's timing
// figures suffering; see docs/testing.md).
//
// The timing labs (timingLab) time the peer detector and BFD in
// fractions of a second. They run together, before the others and
// never beside them, with the uninstrumented lbd (timingBin): four labs
// of race-built daemons beside them once starved the detector they
// time.
var labs = &labScheduler{gather: 300 * time.Millisecond}

// labParallel makes t a parallel lab test that waits for a slot, and
// frees it after t's own cleanups (the lab's teardown). expected is
// roughly how long the test takes; the longest waiting lab goes first.
func labParallel(t *testing.T, expected time.Duration) {
	labWait(t, expected, false)
}

// timingLab makes t a parallel lab test that runs with the other timing
// labs, while no other lab runs.
func timingLab(t *testing.T, expected time.Duration) {
	labWait(t, expected, true)
}

// machineTicks is /proc/stat's line for all CPUs: every state's ticks in all,
// and the steal among them (time a virtual CPU wanted to run and the
// hypervisor ran something else).
type machineTicks struct{ total, steal uint64 }

func readMachineTicks() (machineTicks, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineTicks{}, false
	}
	return parseMachineTicks(string(b))
}

func parseMachineTicks(stat string) (machineTicks, bool) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	// cpu user nice system idle iowait irq softirq steal [guest guest_nice]
	if len(f) < 9 || f[0] != "cpu" {
		return machineTicks{}, false
	}
	var c machineTicks
	for i, v := range f[1:9] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return machineTicks{}, false
		}
		c.total += n
		if i == 7 {
			c.steal = n
		}
	}
	return c, true
}

// stealShare says how much of the CPUs' time between two readings was
// stolen: "31 % (74 s of 240 s)". A timing figure taken while a large
// share was is a measure of the host, not of lbd.
func stealShare(before, after machineTicks) string {
	total, steal := after.total-before.total, after.steal-before.steal
	if total == 0 {
		return "none measured"
	}
	// Ticks are USER_HZ, 100 a second on Linux.
	return strconv.FormatUint(steal*100/total, 10) + " % (" +
		strconv.FormatUint(steal/100, 10) + " s of " + strconv.FormatUint(total/100, 10) + " s)"
}

func labWait(t *testing.T, expected time.Duration, timing bool) {
	t.Parallel()
	start := time.Now()
	labs.acquire(expected, timing)
	t.Cleanup(func() { labs.release(timing) })
	if waited := time.Since(start); waited > time.Second {
		t.Logf("waited %v for a lab slot", waited.Round(time.Second))
	}
	// A lab that failed says how much CPU time the host withheld while
	// it ran: a large share makes its figures a measure of the host.
	before, ok := readMachineTicks()
	t.Cleanup(func() {
		after, ok2 := readMachineTicks()
		if t.Failed() && ok && ok2 {
			t.Logf("CPU time the hypervisor withheld during this test (steal in /proc/stat): %s", stealShare(before, after))
		}
	})
}

type labScheduler struct {
	gather time.Duration // how long the first arrival waits for the others

	mu       sync.Mutex
	slots    int // free slots for the other labs; set on first use
	timing   int // timing labs running
	started  bool
	gathered bool
	waiting  []*labWaiter
}

type labWaiter struct {
	expected time.Duration
	timing   bool
	start    chan struct{}
}

func labSlots() int {
	if n, err := strconv.Atoi(os.Getenv("LBD_LAB_SLOTS")); err == nil && n > 0 {
		return n
	}
	return 4
}

// acquire blocks until the caller may run. Parallel tests are released
// together once the package's sequential tests end; the first to arrive
// waits gather for the others, so that the order is by expected
// duration, not by the scheduler's whim.
func (s *labScheduler) acquire(expected time.Duration, timing bool) {
	w := &labWaiter{expected: expected, timing: timing, start: make(chan struct{})}
	s.mu.Lock()
	if !s.started {
		s.started = true
		s.slots = labSlots()
		time.AfterFunc(s.gather, func() {
			s.mu.Lock()
			s.gathered = true
			s.dispatch()
			s.mu.Unlock()
		})
	}
	s.waiting = append(s.waiting, w)
	if s.gathered {
		s.dispatch()
	}
	s.mu.Unlock()
	<-w.start
}

func (s *labScheduler) release(timing bool) {
	s.mu.Lock()
	if timing {
		s.timing--
	} else {
		s.slots++
	}
	s.dispatch()
	s.mu.Unlock()
}

// dispatch starts every waiting timing lab once no other lab runs, and
// otherwise, while no timing lab runs or waits, the longest waiting labs
// while slots are free. Callers hold s.mu.
func (s *labScheduler) dispatch() {
	timingWaits := slices.ContainsFunc(s.waiting, func(w *labWaiter) bool { return w.timing })
	if timingWaits {
		if s.slots < labSlots() {
			return // the other labs running end first
		}
		s.waiting = slices.DeleteFunc(s.waiting, func(w *labWaiter) bool {
			if w.timing {
				s.timing++
				close(w.start)
			}
			return w.timing
		})
		return
	}
	for s.timing == 0 && s.slots > 0 && len(s.waiting) > 0 {
		longest := 0
		for i, w := range s.waiting {
			if w.expected > s.waiting[longest].expected {
				longest = i
			}
		}
		w := s.waiting[longest]
		s.waiting = append(s.waiting[:longest], s.waiting[longest+1:]...)
		s.slots--
		close(w.start)
	}
}

// TestLabScheduler: labs that arrive together start longest first, never
// more than the slots at once, and a late arrival runs when a slot frees;
// the timing labs run first, all together, and never beside another lab.
func TestLabScheduler(t *testing.T) {
	type lab struct {
		d      time.Duration
		timing bool
	}
	try := func(slots string, labs ...lab) (order []lab, most, mostTiming int, mixed bool) {
		t.Setenv("LBD_LAB_SLOTS", slots)
		s := &labScheduler{gather: 100 * time.Millisecond}
		var mu sync.Mutex
		running, timing := 0, 0
		var wg sync.WaitGroup
		run := func(l lab) {
			defer wg.Done()
			s.acquire(l.d, l.timing)
			mu.Lock()
			order = append(order, l)
			if l.timing {
				timing++
			} else {
				running++
			}
			most, mostTiming = max(most, running), max(mostTiming, timing)
			mixed = mixed || running > 0 && timing > 0
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			if l.timing {
				timing--
			} else {
				running--
			}
			mu.Unlock()
			s.release(l.timing)
		}
		for _, l := range labs {
			wg.Add(1)
			go run(l)
		}
		wg.Wait()
		wg.Add(1)
		run(lab{d: 7}) // after the gathering: runs at once, a slot being free
		return order, most, mostTiming, mixed
	}
	order, most, _, _ := try("1", lab{d: 1}, lab{d: 5}, lab{d: 3}, lab{d: 4}, lab{d: 2})
	if want := []lab{{d: 5}, {d: 4}, {d: 3}, {d: 2}, {d: 1}, {d: 7}}; !slices.Equal(order, want) {
		t.Errorf("one slot: labs started in the order %v, want %v", order, want)
	}
	if most != 1 {
		t.Errorf("one slot: %d labs ran at once", most)
	}
	if _, most, _, _ := try("2", lab{d: 1}, lab{d: 1}, lab{d: 1}, lab{d: 1}, lab{d: 1}); most != 2 {
		t.Errorf("two slots: %d labs ran at once, want 2", most)
	}
	order, most, mostTiming, mixed := try("1", lab{d: 5}, lab{d: 1, timing: true}, lab{d: 4}, lab{d: 2, timing: true}, lab{d: 3, timing: true}, lab{d: 6})
	if first := order[:3]; !slices.ContainsFunc(first, func(l lab) bool { return l.timing }) ||
		slices.ContainsFunc(first, func(l lab) bool { return !l.timing }) {
		t.Errorf("with timing labs: the order %v, want the three timing labs first", order)
	}
	if want := []lab{{d: 6}, {d: 5}, {d: 4}, {d: 7}}; !slices.Equal(order[3:], want) {
		t.Errorf("with timing labs: the others started in the order %v, want %v", order[3:], want)
	}
	if mostTiming != 3 || most != 1 || mixed {
		t.Errorf("with timing labs: %d timing labs at once (want 3), %d others (want 1), both kinds at once: %v", mostTiming, most, mixed)
	}
}

// TestRaceLabsExist: every name in raceLabs is a test of this package, so
// a renamed lab cannot lose its race-built lbd unnoticed.
func TestRaceLabsExist(t *testing.T) {
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	var src strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	for name := range raceLabs {
		if !strings.Contains(src.String(), "\nfunc "+name+"(t *testing.T) {") {
			t.Errorf("raceLabs names %s, which is not a test in this package", name)
		}
	}
}

// TestTimingLabsInScript: scripts/test.sh runs the timing labs in a go
// test of their own at the normal priority, by name; a timing lab it
// does not name would run under nice 19 with the rest, and a name that
// is no timing lab would run a lab beside them.
func TestTimingLabsInScript(t *testing.T) {
	script, err := os.ReadFile("../../scripts/test.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^timing='\^\(([A-Za-z0-9|]+)\)\$'$`).FindSubmatch(script)
	if m == nil {
		t.Fatal("no timing='^(A|B)$' line in scripts/test.sh")
	}
	inScript := strings.Split(string(m[1]), "|")
	files, err := filepath.Glob("*_test.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test files: %v", err)
	}
	var inCode []string
	re := regexp.MustCompile(`\nfunc (Test\w+)\(t \*testing\.T\) \{\n(?:\t//[^\n]*\n)*\ttimingLab\(t,`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			inCode = append(inCode, string(m[1]))
		}
	}
	slices.Sort(inScript)
	slices.Sort(inCode)
	if !slices.Equal(inScript, inCode) {
		t.Errorf("scripts/test.sh's timing labs %v, the tests that call timingLab %v", inScript, inCode)
	}
}

func TestParseMachineTicks(t *testing.T) {
	c, ok := parseMachineTicks("cpu  578334 134267 143013 357014 7000 0 4058 127398 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
	if !ok || c.total != 578334+134267+143013+357014+7000+0+4058+127398 || c.steal != 127398 {
		t.Errorf("parseMachineTicks = %+v, %v", c, ok)
	}
	if _, ok := parseMachineTicks("intr 1 2 3\n"); ok {
		t.Error("parseMachineTicks accepted a line that is not the cpu line")
	}
	if got, want := stealShare(machineTicks{total: 1000, steal: 100}, machineTicks{total: 25000, steal: 7500}), "30 % (74 s of 240 s)"; got != want {
		t.Errorf("stealShare = %q, want %q", got, want)
	}
	if _, ok := readMachineTicks(); !ok {
		t.Error("readMachineTicks: no cpu line in /proc/stat")
	}
}
