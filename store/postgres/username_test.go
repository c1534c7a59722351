package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"gpt2d/store"
	"gpt2d/store/pgtest"
	"gpt2d/store/storetest"
)

// TestReindexKeepsCollidingAccountsApart takes a database back to schema
// 4, when username_folded was the lower-cased name, fills it with
// storetest.OldUsernames (two of which PRECIS folds alike), and opens it.
func TestReindexKeepsCollidingAccountsApart(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db, err := Open(context.Background(), url, Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	conn := connect(t, url)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `DELETE FROM gpt2d_schema WHERE version = 5;
ALTER TABLE users DROP COLUMN username_lower;
ALTER TABLE users ALTER COLUMN username_folded SET NOT NULL`); err != nil {
		t.Fatal(err)
	}
	for _, name := range storetest.OldUsernames {
		data, _ := json.Marshal(store.User{Username: name, Role: store.RoleUser})
		if _, err := conn.Exec(ctx, `INSERT INTO users (username_folded, role, disabled, data) VALUES ($1, 'user', false, $2)`,
			strings.ToLower(name), data); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	db, err = Open(ctx, url, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.Version(); v != SchemaVersion {
		t.Fatalf("version %d after open, want %d", v, SchemaVersion)
	}
	if !strings.Contains(logs.String(), "username collision") || !strings.Contains(logs.String(), "username=Bob") {
		t.Fatalf("the re-index logged %q", logs.String())
	}
	storetest.CheckReindexed(t, db)
}

// TestImportCarriesCollidingAccounts copies a bbolt store that holds two
// accounts PRECIS folds alike (re-indexed on opening): the copy keeps
// both apart as the source does, instead of failing on the unique name.
func TestImportCarriesCollidingAccounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	var users []store.User
	for _, n := range storetest.OldUsernames {
		users = append(users, store.User{Username: n, Role: store.RoleUser})
	}
	storetest.WriteOldBoltFile(t, path, users)
	src, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	d, err := src.Dump()
	if err != nil {
		t.Fatal(err)
	}
	dst := openTest(t)
	for round := range 2 {
		if err := dst.Import(d); err != nil {
			t.Fatalf("import %d: %v", round, err)
		}
	}
	back, err := dst.Dump()
	if err != nil {
		t.Fatal(err)
	}
	want, got := d.Sections(), back.Sections()
	for i := range want {
		if want[i] != got[i] {
			t.Errorf("%s: source %+v, target %+v", want[i].Name, want[i], got[i])
		}
	}
	storetest.CheckReindexed(t, dst)
}
