//go:build race

package bgp_test

// A test binary built with -race builds the lab's helper with -race too;
// benchmarks run without -race and measure an uninstrumented helper.
func init() { raceDetector = true }
