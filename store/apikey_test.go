package store

import (
	"errors"
	"testing"
	"time"
)

func TestAPIKeyLifecycle(t *testing.T) {
	db := openTemp(t)
	alice := &User{Username: "alice", Role: RoleUser}
	bob := &User{Username: "bob", Role: RoleUser}
	db.CreateUser(alice)
	db.CreateUser(bob)

	k := &APIKey{UserID: alice.ID, Name: "ci", Prefix: "g2d_abc", Hash: []byte("hash-1"), Scopes: []Scope{ScopeGenerate}, CreatedAt: time.Now()}
	if err := db.CreateAPIKey(k); err != nil || k.ID == 0 {
		t.Fatalf("create: %v, id %d", err, k.ID)
	}
	if err := db.CreateAPIKey(&APIKey{UserID: 99, Hash: []byte("x")}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key for a missing user: %v", err)
	}
	got, err := db.APIKeyByHash([]byte("hash-1"))
	if err != nil || got.ID != k.ID || got.Name != "ci" || !got.Has(ScopeGenerate) || got.Has(ScopeAdmin) {
		t.Fatalf("by hash: %+v, %v", got, err)
	}
	if _, err := db.APIKeyByHash([]byte("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown hash: %v", err)
	}

	used := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := db.TouchAPIKeys(map[uint64]time.Time{k.ID: used, 12345: used}); err != nil {
		t.Fatal(err)
	}
	db.TouchAPIKeys(map[uint64]time.Time{k.ID: used.Add(-time.Hour)}) // never backwards
	keys, _ := db.APIKeys(alice.ID)
	if len(keys) != 1 || keys[0].LastUsedAt == nil || !keys[0].LastUsedAt.Equal(used) {
		t.Fatalf("list after touch: %+v", keys)
	}
	if keys, _ := db.APIKeys(bob.ID); len(keys) != 0 {
		t.Fatalf("bob sees %+v", keys)
	}

	if err := db.DeleteAPIKey(bob.ID, k.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob deleted alice's key: %v", err)
	}
	if err := db.DeleteAPIKey(alice.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.APIKeyByHash([]byte("hash-1")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked key still found: %v", err)
	}
}

func TestAPIKeysGoWithTheirUserAndAreBounded(t *testing.T) {
	db := openTemp(t)
	db.CreateUser(&User{Username: "admin", Role: RoleAdmin})
	u := &User{Username: "carol", Role: RoleUser}
	db.CreateUser(u)
	for i := range MaxKeysPerUser {
		if err := db.CreateAPIKey(&APIKey{UserID: u.ID, Hash: []byte{byte(i), byte(i >> 8), 1}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CreateAPIKey(&APIKey{UserID: u.ID, Hash: []byte("one-more")}); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("key %d: %v", MaxKeysPerUser+1, err)
	}
	if err := db.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.APIKeyByHash([]byte{0, 0, 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("key of a deleted user: %v", err)
	}
}
