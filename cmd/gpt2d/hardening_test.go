package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gpt2d/store"
)

func TestServeRefusesADamagedStore(t *testing.T) {
	good := filepath.Join(t.TempDir(), "good.db")
	cmd := gpt2d(nil, "users", "create", "--data", good, "--username", "keeper")
	cmd.Stdin = strings.NewReader("keeper-password\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	full, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"empty": nil, "truncated": full[:len(full)/2]} {
		t.Run(name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "gpt2d.db")
			os.WriteFile(data, content, 0o600)
			cmd := gpt2d(nil, serveArgs(data)...)
			done := make(chan struct{})
			var out []byte
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("serve started on a damaged store")
			}
			if err == nil || !strings.Contains(string(out), data) || !strings.Contains(string(out), "consistency check") {
				t.Fatalf("serve on a %s store: %v\n%s", name, err, out)
			}
			if fi, _ := os.Stat(data); fi.Size() != int64(len(content)) {
				t.Fatalf("the %s file was changed to %d bytes", name, fi.Size())
			}
		})
	}
}

// backupReport parses the line `gpt2d backup` prints.
var backupReport = regexp.MustCompile(`backup: (\S+) verified: (\d+) bytes, sha256 ([0-9a-f]{64})`)

func TestBackupVerifiesTheSnapshotAndPrintsItsDigest(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data", "gpt2d.db")
	env := []string{"GPT2D_ADMIN_USERNAME=root", "GPT2D_ADMIN_PASSWORD=root-password"}
	s := startServe(t, data, env)
	check := func(out []byte, dst string) {
		t.Helper()
		m := backupReport.FindStringSubmatch(string(out))
		if m == nil || m[1] != dst {
			t.Fatalf("backup printed %q", out)
		}
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if m[2] != fmt.Sprint(len(b)) || m[3] != hex.EncodeToString(sum[:]) {
			t.Fatalf("reported %s bytes sha256 %s; the file has %d bytes sha256 %x", m[2], m[3], len(b), sum)
		}
		if err := store.Verify(dst); err != nil {
			t.Fatal(err)
		}
	}
	// Through the running server.
	dst := filepath.Join(dir, "online.db")
	cmd := gpt2d(nil, "backup", "--url", s.url, "--username", "root", dst)
	cmd.Stdin = strings.NewReader("root-password\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v %s", err, out)
	}
	check(out, dst)
	s.cmd.Process.Signal(os.Interrupt)
	s.cmd.Wait()

	// From the stopped store's file.
	dst = filepath.Join(dir, "offline.db")
	if out, err = gpt2d(nil, "backup", "--data", data, dst).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	check(out, dst)

	// A server that sends something that is not a store: nothing is
	// written, the command fails.
	junk := filepath.Join(dir, "junk.db")
	srv := fakeBackupServer(t, strings.Repeat("not a store ", 2000))
	cmd = gpt2d([]string{"GPT2D_TOKEN=whatever"}, "backup", "--url", srv, junk)
	if out, err = cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "fails verification") {
		t.Fatalf("junk snapshot: %v %s", err, out)
	}
	if _, err := os.Stat(junk); !os.IsNotExist(err) {
		t.Fatalf("junk snapshot written: %v", err)
	}
}

func TestServeWarnsWhenExposedWithOpenRegistrationAndNoAdmin(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	// 0.0.0.0 listens on every interface, loopback included.
	s := startServe(t, data, nil, "--addr", "0.0.0.0:0")
	code, _ := s.call(t, "GET", "/health", "", "")
	if code != 200 {
		t.Fatalf("/health = %d", code)
	}
	if !strings.Contains(s.logs.String(), "listening beyond loopback with open registration and no admin") {
		t.Fatalf("no warning:\n%s", s.logs)
	}
	// Loopback (the default) or an admin: no warning.
	quiet := startServe(t, filepath.Join(t.TempDir(), "gpt2d.db"), nil)
	if strings.Contains(quiet.logs.String(), "beyond loopback") {
		t.Fatalf("warning on loopback:\n%s", quiet.logs)
	}
}

func TestAddrDefaultsToLoopback(t *testing.T) {
	var cfg Config
	b := newBinder("serve", func(string) string { return "" }, io.Discard)
	cfg.bindServe(b)
	if err := b.parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.Addr != "127.0.0.1:8000" {
		t.Fatalf("--addr defaults to %q", cfg.Addr)
	}
	if cfg.AuditMaxAge != 90*24*time.Hour || cfg.AuditMaxEvents != 1_000_000 || cfg.MaxConnsPerIP != 128 ||
		cfg.HeaderTimeout != 5*time.Second || cfg.MaxSessions != 20 || cfg.RefreshRate != 12 {
		t.Fatalf("hardening defaults %+v", cfg)
	}
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^ADDR\s+\?= 127\.0\.0\.1:8000$`).Match(mk) {
		t.Fatal("Makefile's ADDR default is not 127.0.0.1:8000")
	}
}

// fakeBackupServer answers GET /admin/backup with body, and returns its URL.
func fakeBackupServer(t *testing.T, body string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
