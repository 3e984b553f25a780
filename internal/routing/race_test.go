//go:build race

package routing

// raceEnabled shrinks the big simulation under the race detector, which
// slows its array-heavy loops about twentyfold and finds nothing there: the
// router is single-threaded by design. TestTableConcurrentUse is the test
// that needs the detector.
const raceEnabled = true
