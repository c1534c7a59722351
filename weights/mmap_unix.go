//go:build unix

package weights

import (
	"os"
	"syscall"
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
