package main

import "golang.org/x/sys/unix"

// echoOff turns the terminal's echo off until restore is called. Prompts
// are printed only after it, so a reply typed (or sent by a program) the
// moment the prompt appears is never echoed: term.ReadPassword alone turns
// echo off after the prompt has been printed, which leaves that window open.
func echoOff(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	quiet.Iflag |= unix.ICRNL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	return func() { unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
