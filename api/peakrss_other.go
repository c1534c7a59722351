//go:build !linux

package api

// peakRSSBytes reports that the peak resident set is not measured here
// (getrusage's maxrss unit differs between systems).
func peakRSSBytes() (float64, bool) { return 0, false }
