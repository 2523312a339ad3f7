//go:build race

package announce

// A test binary built with -race builds its helpers with -race too;
// benchmarks run without -race and measure uninstrumented helpers.
func init() { raceDetector = true }
