package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gpt2d/auth"
	"gpt2d/store"
)

func TestStoredKeyMovesToAKeyFileAndRotates(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	// A store as older versions left it: the signing key inside.
	db, err := store.Open(data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := db.EnsureJWTKey(func() ([]byte, error) { return []byte(strings.Repeat("K", 32)), nil })
	if err != nil {
		t.Fatal(err)
	}
	svc, err := auth.New(db, stored, auth.Config{BcryptCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	u, err := svc.Register("root", "root-secret-5150", store.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	old, err := svc.IssueAccessToken(u)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := startServe(t, data, nil)
	if code, body := s.call(t, "GET", "/users/me", old, ""); code != 200 {
		t.Fatalf("token signed with the stored key after migration: %d %s", code, body)
	}
	keyFile := auth.DefaultKeyFile(data)
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}

	// A backup no longer carries the key.
	backup := filepath.Join(t.TempDir(), "backup.db")
	session := s.token(t, "root", "root-secret-5150")
	code, body := s.call(t, "GET", "/admin/backup", session, "")
	if code != 200 || bytes.Contains([]byte(body), stored) {
		t.Fatalf("backup: %d, holds the key: %v", code, bytes.Contains([]byte(body), stored))
	}
	os.WriteFile(backup, []byte(body), 0o600)
	snap, err := store.Open(backup, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := snap.StoredJWTKey(); k != nil {
		t.Fatal("the backup holds a signing key")
	}
	snap.Close()

	// Rotation ends every access token, in the running server.
	out, err := gpt2d(nil, "keys", "rotate", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), keyFile) {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	waitFor(t, func() bool {
		code, _ := s.call(t, "GET", "/users/me", session, "")
		return code == 401
	})
	if code, _ := s.call(t, "GET", "/users/me", old, ""); code != 401 {
		t.Fatalf("old token after rotation: %d", code)
	}
	fresh := s.token(t, "root", "root-secret-5150")
	if code, body := s.call(t, "GET", "/users/me", fresh, ""); code != 200 {
		t.Fatalf("new token: %d %s", code, body)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	db, err = store.Open(data, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if k, _ := db.StoredJWTKey(); k != nil {
		t.Fatal("the key is still in the store")
	}
}
