//go:build unix

package weights

import (
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmap maps size bytes of fd read-only and shared, so many processes and
// goroutines read one copy of the weights from the page cache.
func mmap(fd *os.File, size int64) ([]byte, func() error, error) {
	data, err := syscall.Mmap(int(fd.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}

// release tells the kernel that this process is done with b, a part of a
// read-only file mapping, so that its pages leave the resident set (they
// stay in the page cache, and a later read faults them back in). Only the
// whole pages inside b are released.
func release(b []byte) {
	if len(b) == 0 {
		return
	}
	ps := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(&b[0]))
	lo := int((ps - start%ps) % ps)
	hi := len(b) - int((start+uintptr(len(b)))%ps)
	if hi > lo {
		unix.Madvise(b[lo:hi], unix.MADV_DONTNEED) // advice only: failure is harmless
	}
}
