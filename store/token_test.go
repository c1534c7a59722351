package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	now0      = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	farFuture = now0.Add(24 * time.Hour)
)

func put(t *testing.T, db *DB, hash string, user uint64, family string, max int) int {
	t.Helper()
	n, err := db.PutRefreshToken(&RefreshToken{Hash: []byte(hash), UserID: user, Family: family, CreatedAt: now0, ExpiresAt: farFuture}, max, now0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRefreshRotationAndReuse(t *testing.T) {
	db := openTemp(t)
	put(t, db, "t1", 7, "fam", 0)

	old, err := db.RotateRefreshToken([]byte("t1"), 7, "fam", &RefreshToken{Hash: []byte("t2"), ExpiresAt: farFuture}, now0)
	if err != nil || old.UserID != 7 {
		t.Fatalf("first rotation = %+v, %v", old, err)
	}
	// Replaying t1 is reuse: the family, including the live t2, is revoked.
	if _, err := db.RotateRefreshToken([]byte("t1"), 7, "fam", &RefreshToken{Hash: []byte("t3"), ExpiresAt: farFuture}, now0); !errors.Is(err, ErrTokenReused) {
		t.Fatalf("replay = %v, want ErrTokenReused", err)
	}
	if _, err := db.RotateRefreshToken([]byte("t2"), 7, "fam", &RefreshToken{Hash: []byte("t4"), ExpiresAt: farFuture}, now0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("sibling after reuse = %v, want ErrNotFound", err)
	}
}

func TestRefreshUnknownTokenNamingAnotherUsersFamilyIsNotFound(t *testing.T) {
	db := openTemp(t)
	put(t, db, "t1", 7, "fam", 0)
	// The family is keyed by its user: naming it with another user id
	// neither finds nor revokes it.
	if _, err := db.RotateRefreshToken([]byte("x"), 8, "fam", &RefreshToken{Hash: []byte("y")}, now0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("= %v, want ErrNotFound", err)
	}
	if _, err := db.RotateRefreshToken([]byte("t1"), 7, "fam", &RefreshToken{Hash: []byte("t2"), ExpiresAt: farFuture}, now0); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshExpired(t *testing.T) {
	db := openTemp(t)
	db.PutRefreshToken(&RefreshToken{Hash: []byte("t1"), UserID: 1, Family: "f", ExpiresAt: now0.Add(time.Minute)}, 0, now0)
	_, err := db.RotateRefreshToken([]byte("t1"), 1, "f", &RefreshToken{Hash: []byte("t2")}, now0.Add(2*time.Minute))
	if !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("rotate expired = %v", err)
	}
	if n, _ := db.CountRefreshFamilies(1, now0); n != 0 {
		t.Fatalf("expired family kept: %d", n)
	}
}

func TestRevokeRefreshTokensOfUser(t *testing.T) {
	db := openTemp(t)
	put(t, db, "a", 1, "f1", 0)
	put(t, db, "b", 2, "f2", 0)
	if err := db.RevokeRefreshTokens(1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RotateRefreshToken([]byte("a"), 1, "f1", &RefreshToken{Hash: []byte("a2")}, now0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token = %v", err)
	}
	if _, err := db.RotateRefreshToken([]byte("b"), 2, "f2", &RefreshToken{Hash: []byte("b2"), ExpiresAt: farFuture}, now0); err != nil {
		t.Fatalf("other user's token = %v", err)
	}
}

func TestRefreshFamiliesPerUserAreCappedOldestFirst(t *testing.T) {
	db := openTemp(t)
	for i := range 5 {
		tok := &RefreshToken{Hash: fmt.Appendf(nil, "h%d", i), UserID: 3, Family: fmt.Sprintf("f%d", i),
			CreatedAt: now0.Add(time.Duration(i) * time.Second), ExpiresAt: farFuture}
		if _, err := db.PutRefreshToken(tok, 3, now0); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := db.CountRefreshFamilies(3, now0); n != 3 {
		t.Fatalf("%d live families, want the cap 3", n)
	}
	for i, want := range []error{ErrNotFound, ErrNotFound, nil, nil, nil} {
		_, err := db.RotateRefreshToken(fmt.Appendf(nil, "h%d", i), 0, "", &RefreshToken{Hash: fmt.Appendf(nil, "n%d", i), ExpiresAt: farFuture}, now0)
		if !errors.Is(err, want) && err != want {
			t.Errorf("family %d: %v, want %v", i, err, want)
		}
	}
}

func TestRefreshRotationKeepsOneRecordPerFamily(t *testing.T) {
	db := openTemp(t)
	put(t, db, "h0", 1, "fam", 0)
	for i := range 200 {
		if _, err := db.RotateRefreshToken(fmt.Appendf(nil, "h%d", i), 1, "fam",
			&RefreshToken{Hash: fmt.Appendf(nil, "h%d", i+1), CreatedAt: now0, ExpiresAt: farFuture}, now0); err != nil {
			t.Fatal(err)
		}
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if f, h := tx.Bucket(bucketFamilies).Stats().KeyN, tx.Bucket(bucketRefreshes).Stats().KeyN; f != 1 || h != 1 {
			t.Fatalf("after 200 rotations: %d family records, %d hashes; want 1 and 1", f, h)
		}
		return nil
	})
}

func TestPruneRefreshTokensDropsExpiredFamilies(t *testing.T) {
	db := openTemp(t)
	put(t, db, "live", 1, "a", 0)
	db.PutRefreshToken(&RefreshToken{Hash: []byte("old"), UserID: 2, Family: "b", ExpiresAt: now0.Add(time.Minute)}, 0, now0)
	if n, err := db.PruneRefreshTokens(now0.Add(time.Hour)); n != 1 || err != nil {
		t.Fatalf("pruned %d, %v; want 1", n, err)
	}
	if _, err := db.RefreshTokenByHash([]byte("live")); err != nil {
		t.Fatal(err)
	}
}

// TestMigrationMovesLiveRefreshTokensToFamilies opens a schema-3 file (as
// the previous release wrote it) and checks that live tokens still
// rotate, while used ones are gone.
func TestMigrationMovesLiveRefreshTokensToFamilies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v3.db")
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, m := range migrations[:3] {
			if err := m(tx); err != nil {
				return err
			}
		}
		rb := tx.Bucket([]byte("refresh"))
		for _, r := range []struct {
			hash string
			used bool
		}{{"used", true}, {"live", false}} {
			v, _ := json.Marshal(map[string]any{"user_id": 5, "family": "fam", "created_at": now0, "expires_at": farFuture, "used": r.used})
			if err := rb.Put([]byte(r.hash), v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte("3"))
	})
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.RotateRefreshToken([]byte("used"), 0, "", &RefreshToken{Hash: []byte("x"), ExpiresAt: farFuture}, now0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("used token after migration = %v, want ErrNotFound", err)
	}
	old, err := db.RotateRefreshToken([]byte("live"), 0, "", &RefreshToken{Hash: []byte("next"), ExpiresAt: farFuture}, now0)
	if err != nil || old.UserID != 5 || old.Family != "fam" {
		t.Fatalf("live token after migration = %+v, %v", old, err)
	}
	db.bolt.View(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("refresh")) != nil {
			t.Error("old refresh bucket left behind")
		}
		return nil
	})
}

// BenchmarkLogoutAfter10000Refreshes measures revoking a user's sessions
// (logout) after the user's one session was refreshed 10 000 times. Run
// it with -benchtime=1x: each iteration first makes the refreshes.
func BenchmarkLogoutAfter10000Refreshes(b *testing.B) {
	for range b.N {
		b.StopTimer()
		db, err := Open(filepath.Join(b.TempDir(), "bench.db"), Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.PutRefreshToken(&RefreshToken{Hash: []byte("h0"), UserID: 1, Family: "fam", CreatedAt: now0, ExpiresAt: farFuture}, 0, now0); err != nil {
			b.Fatal(err)
		}
		for i := range 10_000 {
			if _, err := db.RotateRefreshToken(fmt.Appendf(nil, "h%d", i), 1, "fam",
				&RefreshToken{Hash: fmt.Appendf(nil, "h%d", i+1), CreatedAt: now0, ExpiresAt: farFuture}, now0); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if err := db.RevokeRefreshTokens(1); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		db.Close()
	}
}
