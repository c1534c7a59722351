package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"gpt2d/store"
)

var keyCases = []Case{
	{"APIKeyLifecycle", func(t *testing.T, db store.Store) {
		alice := mustUser(t, db, "alice", store.RoleUser)
		bob := mustUser(t, db, "bob", store.RoleUser)
		exp := time.Date(2032, 5, 6, 7, 8, 9, 10, time.UTC)
		k := &store.APIKey{UserID: alice.ID, Name: "ci", Prefix: "g2d_abc", Hash: []byte("hash-1"),
			Scopes: []store.Scope{store.ScopeGenerate}, CreatedAt: now0, ExpiresAt: &exp}
		if err := db.CreateAPIKey(k); err != nil || k.ID == 0 {
			t.Fatalf("create: %v, id %d", err, k.ID)
		}
		if err := db.CreateAPIKey(&store.APIKey{UserID: 99999, Hash: []byte("x")}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("key for a missing user: %v", err)
		}
		got, err := db.APIKeyByHash([]byte("hash-1"))
		if err != nil || got.ID != k.ID || got.UserID != alice.ID || got.Name != "ci" || got.Prefix != "g2d_abc" ||
			string(got.Hash) != "hash-1" || !got.Has(store.ScopeGenerate) || got.Has(store.ScopeAdmin) ||
			!got.CreatedAt.Equal(now0) || got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp) || got.LastUsedAt != nil {
			t.Fatalf("by hash: %+v, %v", got, err)
		}
		if _, err := db.APIKeyByHash([]byte("nope")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown hash: %v", err)
		}

		used := time.Date(2031, 1, 2, 3, 4, 5, 6, time.UTC)
		must(t, db.TouchAPIKeys(map[uint64]time.Time{k.ID: used, 12345: used}))
		must(t, db.TouchAPIKeys(map[uint64]time.Time{k.ID: used.Add(-time.Hour)})) // never backwards
		keys, _ := db.APIKeys(alice.ID)
		if len(keys) != 1 || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(used) {
			t.Fatalf("list after touch: %+v", keys)
		}
		if keys, err := db.APIKeys(bob.ID); err != nil || keys == nil || len(keys) != 0 {
			t.Fatalf("bob sees %#v, %v", keys, err)
		}

		if err := db.DeleteAPIKey(bob.ID, k.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("bob deleted alice's key: %v", err)
		}
		must(t, db.DeleteAPIKey(alice.ID, k.ID))
		if _, err := db.APIKeyByHash([]byte("hash-1")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked key still found: %v", err)
		}
		if err := db.DeleteAPIKey(alice.ID, k.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second revoke: %v", err)
		}
	}},
	{"APIKeysListInCreationOrder", func(t *testing.T, db store.Store) {
		u := mustUser(t, db, "lister", store.RoleUser)
		var ids []uint64
		for i := range 5 {
			k := &store.APIKey{UserID: u.ID, Name: fmt.Sprint(i), Hash: []byte{byte(i), 9}}
			must(t, db.CreateAPIKey(k))
			ids = append(ids, k.ID)
		}
		keys, _ := db.APIKeys(u.ID)
		for i, k := range keys {
			if k.ID != ids[i] || k.Name != fmt.Sprint(i) {
				t.Fatalf("key %d = %+v, want id %d", i, k, ids[i])
			}
		}
	}},
	{"APIKeysAreBoundedUnderConcurrentCreate", func(t *testing.T, db store.Store) {
		u := mustUser(t, db, "carol", store.RoleUser)
		for i := range store.MaxKeysPerUser - 5 {
			must(t, db.CreateAPIKey(&store.APIKey{UserID: u.ID, Hash: []byte{byte(i), byte(i >> 8), 1}}))
		}
		errs := concurrently(20, func(i int) error {
			return db.CreateAPIKey(&store.APIKey{UserID: u.ID, Hash: []byte(fmt.Sprintf("more-%d", i))})
		})
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrTooManyKeys):
				t.Fatal(err)
			}
		}
		if keys, _ := db.APIKeys(u.ID); ok != 5 || len(keys) != store.MaxKeysPerUser {
			t.Fatalf("%d concurrent creations succeeded, %d keys held; want 5, %d", ok, len(keys), store.MaxKeysPerUser)
		}
	}},
}
