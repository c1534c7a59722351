//go:build race

package main

// raceDetector says the tests run under the race detector, whose shadow
// memory and bookkeeping inflate the process's resident set: bounds on
// the server's own memory are not checked then.
const raceDetector = true
