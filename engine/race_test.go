//go:build race

package engine

// raceEnabled reports a test binary built with the race detector.
const raceEnabled = true
