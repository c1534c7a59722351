package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// oldLayoutFile writes a file at the schema before usernames were
// re-indexed, its index keyed by LowerUsername as gpt2d wrote it before
// PRECIS folding; the names get ids 1, 2, … in order.
func oldLayoutFile(t *testing.T, names ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "old.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bolt.Tx) error {
		for _, m := range migrations[:stepReindexUsernames] {
			if err := m(tx); err != nil {
				return err
			}
		}
		users, index := tx.Bucket(bucketUsers), tx.Bucket(bucketUsernames)
		for _, name := range names {
			id, _ := users.NextSequence()
			v, _ := json.Marshal(User{ID: id, Username: name, Role: RoleUser, PasswordHash: []byte("$2a$04$" + name)})
			if err := users.Put(itob(id), v); err != nil {
				return err
			}
			if err := index.Put([]byte(strings.ToLower(name)), itob(id)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(stepReindexUsernames)))
	})
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReindexKeepsCollidingAccountsApart(t *testing.T) {
	// "ｂｏｂ" (fullwidth) and "Bob" were two accounts under lower-casing;
	// under PRECIS both are "bob".
	path := oldLayoutFile(t, "ｂｏｂ", "Bob", "alice", "İstanbul")
	var logs bytes.Buffer
	db, err := Open(path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v, _ := db.Version(); v != SchemaVersion {
		t.Fatalf("version %d after open, want %d", v, SchemaVersion)
	}
	for _, c := range []struct {
		name string
		id   uint64
	}{
		{"ｂｏｂ", 1}, {"ＢＯＢ", 1}, {"ｂOｂ", 1}, // the older account holds "bob"
		{"Bob", 2}, {"bob", 2}, {"BOB", 2}, // the newer one logs in as it registered
		{"alice", 3}, {"ALICE", 3}, {"ａlice", 3},
		{"İstanbul", 4}, {"istanbul", 4}, // its old key stays its alias
	} {
		u, err := db.UserByUsername(c.name)
		if err != nil || u.ID != c.id {
			t.Errorf("UserByUsername(%q) = %+v, %v; want id %d", c.name, u, err, c.id)
		}
	}
	for _, name := range []string{"bob", "ｂob", "Ｂｏｂ", "ALICE", "istanbul", "İSTANBUL"} {
		if err := db.CreateUser(&User{Username: name}); !errors.Is(err, ErrUsernameTaken) {
			t.Errorf("CreateUser(%q) after the re-index = %v, want ErrUsernameTaken", name, err)
		}
	}
	if n, _ := db.CountUsers(); n != 4 {
		t.Fatalf("%d users after the re-index, want all 4", n)
	}
	events, _ := db.ListAudit(0, 10)
	if len(events) != 1 || events[0].Action != "user.username_shadowed" || events[0].Target != "Bob" ||
		events[0].Detail["held_by"] != "ｂｏｂ" || events[0].Detail["reachable_as"] != "bob" {
		t.Fatalf("audit after the re-index = %+v, want one user.username_shadowed event for Bob", events)
	}
	if !strings.Contains(logs.String(), "username collision") || !strings.Contains(logs.String(), "username=Bob") {
		t.Fatalf("the re-index logged %q", logs.String())
	}

	// Reopening does not re-index or report again.
	db.Close()
	if db, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	if events, _ := db.ListAudit(0, 10); len(events) != 1 {
		t.Fatalf("%d audit events after reopening, want 1", len(events))
	}

	// When the older account goes, the newer takes the folded name over:
	// every spelling of "bob" reaches it, and "bob" stays taken.
	if err := db.DeleteUser(1); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ｂｏｂ", "bob", "Bob"} {
		if u, err := db.UserByUsername(name); err != nil || u.ID != 2 {
			t.Errorf("after deleting the holder, UserByUsername(%q) = %+v, %v; want id 2", name, u, err)
		}
	}
	if err := db.CreateUser(&User{Username: "ＢＯＢ"}); !errors.Is(err, ErrUsernameTaken) {
		t.Errorf("CreateUser(ＢＯＢ) after deleting the holder = %v, want ErrUsernameTaken", err)
	}
	if err := db.DeleteUser(2); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateUser(&User{Username: "bob"}); err != nil {
		t.Errorf("CreateUser(bob) once no bob is left = %v", err)
	}
}

func TestIndexUsernamesIsOldestFirst(t *testing.T) {
	for _, c := range []struct {
		name  string
		users []string
		want  []UsernameKeys
	}{
		{"no collision", []string{"alice", "Bob"},
			[]UsernameKeys{{Folded: "alice"}, {Folded: "bob"}}},
		{"older holds the folded name", []string{"ｂｏｂ", "BOB"},
			[]UsernameKeys{{Folded: "bob", Alias: "ｂｏｂ"}, {Alias: "bob", ShadowedBy: 1}}},
		{"three of one name", []string{"bob", "ｂｏｂ", "ＢＯＢ"},
			[]UsernameKeys{{Folded: "bob"}, {Alias: "ｂｏｂ", ShadowedBy: 1}, {ShadowedBy: 1}}},
		{"an alias never takes another account's name", []string{"ix", "İx"},
			[]UsernameKeys{{Folded: "ix"}, {Folded: FoldUsername("İx")}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			users := make([]User, len(c.users))
			for i, n := range c.users {
				users[i] = User{ID: uint64(i + 1), Username: n}
			}
			got := IndexUsernames(users)
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Errorf("%s: %+v, want %+v", c.users[i], got[i], c.want[i])
				}
			}
		})
	}
	if !(UsernameKeys{ShadowedBy: 1}).Unreachable() {
		t.Error("a shadowed account without alias is not reported unreachable")
	}
}
