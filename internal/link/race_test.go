//go:build race

package link

// raceEnabled: the detector makes sync.Pool drop a share of what it is
// given, so allocation counts mean nothing under it.
const raceEnabled = true
