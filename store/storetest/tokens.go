package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"gpt2d/store"
)

// putToken starts family on user with the live token hash.
func putToken(t *testing.T, db store.Store, hash string, user uint64, family string, maxFamilies int) int {
	t.Helper()
	n, err := db.PutRefreshToken(&store.RefreshToken{Hash: []byte(hash), UserID: user, Family: family, CreatedAt: now0, ExpiresAt: farFuture}, maxFamilies, now0)
	must(t, err)
	return n
}

func rotate(db store.Store, hash string, user uint64, family, next string) (*store.RefreshToken, error) {
	return db.RotateRefreshToken([]byte(hash), user, family, &store.RefreshToken{Hash: []byte(next), CreatedAt: now0, ExpiresAt: farFuture}, now0)
}

var tokenCases = []Case{
	{"RefreshRotationAndReuseRevokesFamily", func(t *testing.T, db store.Store) {
		started := now0.Add(-time.Minute + 123)
		_, err := db.PutRefreshToken(&store.RefreshToken{Hash: []byte("t1"), UserID: 7, Family: "fam", StartedAt: started, CreatedAt: started, ExpiresAt: farFuture}, 0, now0)
		must(t, err)
		old, err := rotate(db, "t1", 7, "fam", "t2")
		if err != nil || old.UserID != 7 || old.Family != "fam" || !old.StartedAt.Equal(started) || string(old.Hash) != "t1" {
			t.Fatalf("first rotation = %+v, %v", old, err)
		}
		// Replaying t1, which names its family, is reuse: the family,
		// including the live t2, is revoked.
		if _, err := rotate(db, "t1", 7, "fam", "t3"); !errors.Is(err, store.ErrTokenReused) {
			t.Fatalf("replay = %v, want ErrTokenReused", err)
		}
		if _, err := rotate(db, "t2", 7, "fam", "t4"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("sibling after reuse = %v, want ErrNotFound", err)
		}
	}},
	{"RefreshRotatedNextCarriesFamilyUserAndStart", func(t *testing.T, db store.Store) {
		putToken(t, db, "a", 3, "f3", 0)
		next := &store.RefreshToken{Hash: []byte("b"), CreatedAt: now0.Add(time.Second), ExpiresAt: farFuture}
		if _, err := db.RotateRefreshToken([]byte("a"), 0, "", next, now0); err != nil {
			t.Fatal(err)
		}
		if next.UserID != 3 || next.Family != "f3" || !next.StartedAt.Equal(now0) {
			t.Fatalf("next = %+v", next)
		}
		live, err := db.RefreshTokenByHash([]byte("b"))
		if err != nil || live.UserID != 3 || live.Family != "f3" || !live.CreatedAt.Equal(now0.Add(time.Second)) {
			t.Fatalf("live token = %+v, %v", live, err)
		}
		if _, err := db.RefreshTokenByHash([]byte("a")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("used token still live: %v", err)
		}
	}},
	{"RefreshUnknownTokenNamingAnotherUsersFamilyIsNotFound", func(t *testing.T, db store.Store) {
		putToken(t, db, "t1", 7, "fam", 0)
		if _, err := rotate(db, "forged", 8, "fam", "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("= %v, want ErrNotFound", err)
		}
		if _, err := rotate(db, "t1", 7, "fam", "t2"); err != nil {
			t.Fatalf("the family was touched: %v", err)
		}
	}},
	{"RefreshExpiredDropsItsFamily", func(t *testing.T, db store.Store) {
		_, err := db.PutRefreshToken(&store.RefreshToken{Hash: []byte("t1"), UserID: 1, Family: "f", ExpiresAt: now0.Add(time.Minute)}, 0, now0)
		must(t, err)
		later := now0.Add(2 * time.Minute)
		if _, err := db.RotateRefreshToken([]byte("t1"), 1, "f", &store.RefreshToken{Hash: []byte("t2")}, later); !errors.Is(err, store.ErrTokenExpired) {
			t.Fatalf("rotate expired = %v", err)
		}
		if n, _ := db.CountRefreshFamilies(1, now0); n != 0 {
			t.Fatalf("expired family kept (%d)", n)
		}
	}},
	{"RefreshFamiliesPerUserAreCappedOldestFirst", func(t *testing.T, db store.Store) {
		for i := range 5 {
			tok := &store.RefreshToken{Hash: fmt.Appendf(nil, "h%d", i), UserID: 3, Family: fmt.Sprintf("f%d", i),
				StartedAt: now0.Add(time.Duration(i) * time.Second), ExpiresAt: farFuture}
			if _, err := db.PutRefreshToken(tok, 3, now0); err != nil {
				t.Fatal(err)
			}
		}
		putToken(t, db, "other", 4, "g", 3) // another user's families do not count
		if n, _ := db.CountRefreshFamilies(3, now0); n != 3 {
			t.Fatalf("%d live families, want the cap 3", n)
		}
		for i, want := range []error{store.ErrNotFound, store.ErrNotFound, nil, nil, nil} {
			if _, err := rotate(db, fmt.Sprintf("h%d", i), 0, "", fmt.Sprintf("n%d", i)); !errors.Is(err, want) && err != want {
				t.Errorf("family %d: %v, want %v", i, err, want)
			}
		}
	}},
	{"RevokeRefreshTokensOfOneUser", func(t *testing.T, db store.Store) {
		putToken(t, db, "a", 1, "f1", 0)
		putToken(t, db, "a'", 1, "f1'", 0)
		putToken(t, db, "b", 2, "f2", 0)
		must(t, db.RevokeRefreshTokens(1))
		if _, err := rotate(db, "a", 1, "f1", "a2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked token = %v", err)
		}
		if n, _ := db.CountRefreshFamilies(1, now0); n != 0 {
			t.Fatalf("%d families left", n)
		}
		if _, err := rotate(db, "b", 2, "f2", "b2"); err != nil {
			t.Fatalf("other user's token = %v", err)
		}
	}},
	{"PruneRefreshTokensDropsExpiredFamilies", func(t *testing.T, db store.Store) {
		putToken(t, db, "live", 1, "a", 0)
		_, err := db.PutRefreshToken(&store.RefreshToken{Hash: []byte("old"), UserID: 2, Family: "b", ExpiresAt: now0.Add(time.Minute)}, 0, now0)
		must(t, err)
		if n, err := db.PruneRefreshTokens(now0.Add(time.Hour)); n != 1 || err != nil {
			t.Fatalf("pruned %d, %v; want 1", n, err)
		}
		if _, err := db.RefreshTokenByHash([]byte("live")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.RefreshTokenByHash([]byte("old")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired family kept: %v", err)
		}
	}},
	{"ConcurrentRotationsOfOneTokenLetOneWin", func(t *testing.T, db store.Store) {
		putToken(t, db, "r", 5, "race", 0)
		errs := concurrently(10, func(i int) error {
			_, err := rotate(db, "r", 0, "", fmt.Sprintf("r%d", i))
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
	{"ConcurrentLoginsKeepTheFamilyCap", func(t *testing.T, db store.Store) {
		u := mustUser(t, db, "busy", store.RoleUser)
		errs := concurrently(12, func(i int) error {
			_, err := db.PutRefreshToken(&store.RefreshToken{Hash: fmt.Appendf(nil, "c%d", i), UserID: u.ID, Family: fmt.Sprintf("c%d", i),
				StartedAt: now0, ExpiresAt: farFuture}, 4, now0)
			return err
		})
		for _, err := range errs {
			must(t, err)
		}
		if n, _ := db.CountRefreshFamilies(u.ID, now0); n != 4 {
			t.Fatalf("%d live families after 12 concurrent logins, want the cap 4", n)
		}
	}},
}
