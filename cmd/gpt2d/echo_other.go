//go:build !linux

package main

// echoOff is a no-op where the terminal is not driven through Linux's
// termios ioctls; term.ReadPassword still turns echo off for each read.
func echoOff(fd int) (restore func(), err error) { return func() {}, nil }
