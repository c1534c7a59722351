package store_test

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"gpt2d/store"
	"gpt2d/store/storetest"
)

// TestReindexKeepsCollidingAccountsApart opens a file written in the
// layout before usernames were re-indexed, holding two accounts that
// PRECIS folds to one name.
func TestReindexKeepsCollidingAccountsApart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	var users []store.User
	for _, n := range storetest.OldUsernames {
		users = append(users, store.User{Username: n, Role: store.RoleUser})
	}
	storetest.WriteOldBoltFile(t, path, users)
	var logs bytes.Buffer
	db, err := store.Open(path, store.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.Version(); v != store.SchemaVersion {
		t.Fatalf("version %d after open, want %d", v, store.SchemaVersion)
	}
	if !strings.Contains(logs.String(), "username collision") || !strings.Contains(logs.String(), "username=Bob") {
		t.Fatalf("the re-index logged %q", logs.String())
	}
	storetest.CheckReindexed(t, db)
}
