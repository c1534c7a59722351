package storetest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"gpt2d/store"
)

// OldUsernames are accounts as gpt2d registered them before usernames
// were folded with PRECIS, in id order (1, 2, …): each was unique under
// lower-casing, but "ｂｏｂ" and "Bob" are one name ("bob") under PRECIS,
// and "İstanbul" lower-cased ("istanbul") differs from its PRECIS fold.
// A store test writes them in the store's old layout, opens the store
// (which re-indexes them) and calls CheckReindexed.
var OldUsernames = []string{"ｂｏｂ", "Bob", "alice", "İstanbul"}

// CheckReindexed checks a store holding OldUsernames after its
// re-indexing migration: no account was merged or dropped, each is
// reachable by the spellings that reached it before, the collision is in
// the audit trail, no new name that folds to an existing one registers,
// and deleting the account holding a folded name hands it to the one it
// shadowed. It deletes accounts 1 and 2.
func CheckReindexed(t *testing.T, db store.Store) {
	t.Helper()
	for _, c := range []struct {
		name string
		id   uint64
	}{
		{"ｂｏｂ", 1}, {"ＢＯＢ", 1}, {"ｂOｂ", 1}, // the older account holds "bob"
		{"Bob", 2}, {"bob", 2}, {"BOB", 2}, // the newer one, as it registered
		{"alice", 3}, {"ALICE", 3}, {"ａlice", 3},
		{"İstanbul", 4}, {"istanbul", 4}, // its old key stays its alias
	} {
		u, err := db.UserByUsername(c.name)
		if err != nil || u.ID != c.id {
			t.Errorf("UserByUsername(%q) = %+v, %v; want id %d", c.name, u, err, c.id)
		}
	}
	for _, name := range []string{"bob", "ｂob", "Ｂｏｂ", "ALICE", "istanbul", "İSTANBUL"} {
		if err := db.CreateUser(&store.User{Username: name, Role: store.RoleUser}); !errors.Is(err, store.ErrUsernameTaken) {
			t.Errorf("CreateUser(%q) after the re-index = %v, want ErrUsernameTaken", name, err)
		}
	}
	if n, _ := db.CountUsers(); n != len(OldUsernames) {
		t.Fatalf("%d users after the re-index, want all %d", n, len(OldUsernames))
	}
	events, err := db.ListAudit(0, 10)
	if err != nil || len(events) != 1 || events[0].Action != "user.username_shadowed" || events[0].Target != "Bob" ||
		events[0].Detail["held_by"] != "ｂｏｂ" || events[0].Detail["reachable_as"] != "bob" {
		t.Fatalf("audit after the re-index = %+v, %v; want one user.username_shadowed event for Bob", events, err)
	}

	// When the older account goes, the newer takes the folded name over:
	// every spelling of "bob" reaches it, and "bob" stays taken.
	must(t, db.DeleteUser(1))
	for _, name := range []string{"ｂｏｂ", "bob", "Bob"} {
		if u, err := db.UserByUsername(name); err != nil || u.ID != 2 {
			t.Errorf("after deleting the holder, UserByUsername(%q) = %+v, %v; want id 2", name, u, err)
		}
	}
	if err := db.CreateUser(&store.User{Username: "ＢＯＢ", Role: store.RoleUser}); !errors.Is(err, store.ErrUsernameTaken) {
		t.Errorf("CreateUser(ＢＯＢ) after deleting the holder = %v, want ErrUsernameTaken", err)
	}
	must(t, db.DeleteUser(2))
	if err := db.CreateUser(&store.User{Username: "bob", Role: store.RoleUser}); err != nil {
		t.Errorf("CreateUser(bob) once no bob is left = %v", err)
	}
}

// WriteOldBoltFile writes a bbolt store file at path in schema 4, the
// layout before usernames were re-indexed: its index keys each name by
// strings.ToLower, as gpt2d wrote it then. users get ids 1, 2, … in
// order. The file is made by the current build and then taken back to
// that layout by hand (schema 4 is schema 5 without the alias bucket).
func WriteOldBoltFile(t testing.TB, path string, users []store.User) {
	t.Helper()
	db, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("username_aliases")); err != nil {
			return err
		}
		bucket, index := tx.Bucket([]byte("users")), tx.Bucket([]byte("usernames"))
		for _, u := range users {
			id, err := bucket.NextSequence()
			if err != nil {
				return err
			}
			u.ID = id
			var key [8]byte
			binary.BigEndian.PutUint64(key[:], id)
			v, err := json.Marshal(u)
			if err != nil {
				return err
			}
			if err := bucket.Put(key[:], v); err != nil {
				return err
			}
			if index.Get([]byte(strings.ToLower(u.Username))) != nil {
				return errors.New("two old names lower-case alike: " + u.Username)
			}
			if err := index.Put([]byte(strings.ToLower(u.Username)), key[:]); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), []byte("4"))
	})
	if err != nil {
		t.Fatal(err)
	}
}

var usernameCases = []Case{
	{"UsernameFoldingToAnExistingOneIsRefused", func(t *testing.T, db store.Store) {
		bob := mustUser(t, db, "ｂｏｂ", store.RoleUser) // as stored by a client of the store that does not normalise
		for _, name := range []string{"bob", "BOB", "Ｂob", "ｂｏｂ"} {
			if err := db.CreateUser(&store.User{Username: name, Role: store.RoleUser}); !errors.Is(err, store.ErrUsernameTaken) {
				t.Errorf("CreateUser(%q) beside ｂｏｂ = %v, want ErrUsernameTaken", name, err)
			}
			if u, err := db.UserByUsername(name); err != nil || u.ID != bob.ID {
				t.Errorf("UserByUsername(%q) = %+v, %v; want ｂｏｂ", name, u, err)
			}
		}
		// A lower-cased name that differs from its fold is kept too.
		ist := mustUser(t, db, "İstanbul", store.RoleUser)
		if u, err := db.UserByUsername("istanbul"); err != nil || u.ID != ist.ID {
			t.Errorf("UserByUsername(istanbul) = %+v, %v; want İstanbul", u, err)
		}
		if err := db.CreateUser(&store.User{Username: "istanbul", Role: store.RoleUser}); !errors.Is(err, store.ErrUsernameTaken) {
			t.Errorf("CreateUser(istanbul) beside İstanbul = %v, want ErrUsernameTaken", err)
		}
		must(t, db.DeleteUser(bob.ID))
		must(t, db.DeleteUser(ist.ID))
		for _, name := range []string{"BOB", "istanbul"} {
			if err := db.CreateUser(&store.User{Username: name, Role: store.RoleUser}); err != nil {
				t.Errorf("CreateUser(%q) once its owner is deleted = %v", name, err)
			}
		}
	}},
}
