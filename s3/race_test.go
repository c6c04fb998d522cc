//go:build race

package s3_test

// raceEnabled reports a test binary built with the race detector.
const raceEnabled = true
