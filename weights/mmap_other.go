//go:build !unix

package weights

import (
	"io"
	"os"
)

// mmap reads the file into memory where memory maps are unavailable.
func mmap(fd *os.File, size int64) ([]byte, func() error, error) {
	data := make([]byte, size)
	if _, err := io.ReadFull(fd, data); err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}

// release does nothing: without a memory map there is nothing to give back.
func release(b []byte) {}
