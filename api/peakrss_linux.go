package api

import "syscall"

// peakRSSBytes returns the process's peak resident set (getrusage's
// maxrss, which Linux counts in KiB), or false if it cannot be read.
func peakRSSBytes() (float64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return float64(ru.Maxrss) * 1024, true
}
