//go:build race

package main

// A test binary built with -race builds the lbd it runs with -race too, so
// the integration tests run an instrumented daemon. Benchmarks run without
// -race and measure an uninstrumented one.
func init() { raceDetector = true }
