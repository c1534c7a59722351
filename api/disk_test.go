package api

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"gpt2d/auth"
	"gpt2d/store"
)

// mountTmpfs mounts a tmpfs of size bytes on a fresh directory, for a
// file system that really fills up. It needs root (CI runs as root);
// elsewhere the test is skipped, but never silently in CI.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount tmpfs (CI runs as root and must be able to): %v", err)
		}
		t.Skipf("mount tmpfs: %v (needs root)", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a file until the file system refuses more, and returns it.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

func TestFullDiskAnswers503AndRecovers(t *testing.T) {
	dir := mountTmpfs(t, 4<<20)
	db, err := store.Open(filepath.Join(dir, "gpt2d.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := start(t, func(c *Config, _ *auth.Config) { c.Store = db })
	admin := ts.admin("root")
	filler := fill(t, dir)

	// Writes go on into the file's free pages until it must grow; then
	// every write is refused with a 503 the client can retry, reads go on.
	var full response
	for i := 0; ; i++ {
		if i == 5000 {
			t.Fatal("the store never ran out of space")
		}
		r := ts.postJSON("/users", "", map[string]any{"username": "user" + strconv.Itoa(i), "password": "a-long-password"})
		if r.status != 200 {
			full = r
			break
		}
	}
	wantDetail(t, full, 503, "Storage is full, retry later")
	if full.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	wantStatus(t, ts.get("/users/me", admin), 200)
	r := ts.postJSON("/users", "", map[string]any{"username": "late", "password": "a-long-password"})
	wantStatus(t, r, 503)

	// Space returns: the same request succeeds, no restart needed.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	ts.register("late", "a-long-password", "", "")
	wantStatus(t, ts.get("/users/me", ts.login("late", "a-long-password")), 200)
}
