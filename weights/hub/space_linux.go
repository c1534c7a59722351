package hub

import (
	"fmt"
	"syscall"
)

// checkSpace fails early, before downloading, when dir's file system has
// less than need bytes free.
func checkSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // cannot tell; the write will say
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if free < need {
		return fmt.Errorf("%w: %s has %s free, the download needs %s more: free some space or use --dir on another disk", syscall.ENOSPC, dir, formatBytes(free), formatBytes(need))
	}
	return nil
}
