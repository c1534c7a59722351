package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"gpt2d/store"
)

var tokenCases = []Case{
	{"RefreshRotationAndReuseRevokesFamily", func(t *testing.T, db store.Store) {
		created := now0.Add(-time.Minute + 123)
		must(t, db.PutRefreshToken(&store.RefreshToken{Hash: []byte("t1"), UserID: 7, Family: "fam", CreatedAt: created, ExpiresAt: farFuture}, now0))
		old, err := db.RotateRefreshToken([]byte("t1"), &store.RefreshToken{Hash: []byte("t2"), CreatedAt: now0, ExpiresAt: farFuture}, now0)
		if err != nil || old.UserID != 7 || old.Family != "fam" || !old.CreatedAt.Equal(created) || string(old.Hash) != "t1" {
			t.Fatalf("first rotation = %+v, %v", old, err)
		}
		// Replaying t1 is reuse: the family, including the live t2, is revoked.
		if _, err := db.RotateRefreshToken([]byte("t1"), &store.RefreshToken{Hash: []byte("t3"), ExpiresAt: farFuture}, now0); !errors.Is(err, store.ErrTokenReused) {
			t.Fatalf("replay = %v, want ErrTokenReused", err)
		}
		if _, err := db.RotateRefreshToken([]byte("t2"), &store.RefreshToken{Hash: []byte("t4"), ExpiresAt: farFuture}, now0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("sibling after reuse = %v, want ErrNotFound", err)
		}
	}},
	{"RefreshRotatedNextCarriesFamilyAndUser", func(t *testing.T, db store.Store) {
		must(t, db.PutRefreshToken(&store.RefreshToken{Hash: []byte("a"), UserID: 3, Family: "f3", ExpiresAt: farFuture}, now0))
		next := &store.RefreshToken{Hash: []byte("b"), ExpiresAt: farFuture}
		if _, err := db.RotateRefreshToken([]byte("a"), next, now0); err != nil {
			t.Fatal(err)
		}
		if next.UserID != 3 || next.Family != "f3" {
			t.Fatalf("next = %+v", next)
		}
		old, err := db.RotateRefreshToken([]byte("b"), &store.RefreshToken{Hash: []byte("c"), ExpiresAt: farFuture}, now0)
		if err != nil || old.UserID != 3 || old.Family != "f3" {
			t.Fatalf("rotating the successor = %+v, %v", old, err)
		}
	}},
	{"RefreshExpired", func(t *testing.T, db store.Store) {
		must(t, db.PutRefreshToken(&store.RefreshToken{Hash: []byte("t1"), UserID: 1, Family: "f", ExpiresAt: now0.Add(time.Minute)}, now0))
		_, err := db.RotateRefreshToken([]byte("t1"), &store.RefreshToken{Hash: []byte("t2")}, now0.Add(2*time.Minute))
		if !errors.Is(err, store.ErrTokenExpired) {
			t.Fatalf("rotate expired = %v", err)
		}
		// Storing another token later drops the expired record.
		must(t, db.PutRefreshToken(&store.RefreshToken{Hash: []byte("t9"), UserID: 1, Family: "g", ExpiresAt: farFuture}, now0.Add(3*time.Minute)))
		if _, err := db.RotateRefreshToken([]byte("t1"), &store.RefreshToken{Hash: []byte("t2")}, now0.Add(2*time.Minute)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired record kept: %v", err)
		}
	}},
	{"RevokeRefreshTokensOfOneUser", func(t *testing.T, db store.Store) {
		must(t, db.PutRefreshToken(&store.RefreshToken{Hash: []byte("a"), UserID: 1, Family: "f1", ExpiresAt: farFuture}, now0))
		must(t, db.PutRefreshToken(&store.RefreshToken{Hash: []byte("b"), UserID: 2, Family: "f2", ExpiresAt: farFuture}, now0))
		must(t, db.RevokeRefreshTokens(1))
		if _, err := db.RotateRefreshToken([]byte("a"), &store.RefreshToken{Hash: []byte("a2")}, now0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked token = %v", err)
		}
		if _, err := db.RotateRefreshToken([]byte("b"), &store.RefreshToken{Hash: []byte("b2"), ExpiresAt: farFuture}, now0); err != nil {
			t.Fatalf("other user's token = %v", err)
		}
	}},
	{"ConcurrentRotationsOfOneTokenLetOneWin", func(t *testing.T, db store.Store) {
		must(t, db.PutRefreshToken(&store.RefreshToken{Hash: []byte("r"), UserID: 5, Family: "race", ExpiresAt: farFuture}, now0))
		errs := concurrently(10, func(i int) error {
			_, err := db.RotateRefreshToken([]byte("r"), &store.RefreshToken{Hash: []byte(fmt.Sprintf("r%d", i)), ExpiresAt: farFuture}, now0)
			return err
		})
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrTokenReused) && !errors.Is(err, store.ErrNotFound):
				t.Fatal(err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d of 10 concurrent rotations of one token succeeded", ok)
		}
	}},
}
