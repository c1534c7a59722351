package store

import (
	"errors"
	"testing"
	"time"
)

var (
	now0      = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	farFuture = now0.Add(24 * time.Hour)
)

func TestRefreshRotationAndReuse(t *testing.T) {
	db := openTemp(t)
	db.PutRefreshToken(&RefreshToken{Hash: []byte("t1"), UserID: 7, Family: "fam", ExpiresAt: farFuture}, now0)

	old, err := db.RotateRefreshToken([]byte("t1"), &RefreshToken{Hash: []byte("t2"), ExpiresAt: farFuture}, now0)
	if err != nil || old.UserID != 7 {
		t.Fatalf("first rotation = %+v, %v", old, err)
	}
	// Replaying t1 is reuse: the family, including the live t2, is revoked.
	if _, err := db.RotateRefreshToken([]byte("t1"), &RefreshToken{Hash: []byte("t3"), ExpiresAt: farFuture}, now0); !errors.Is(err, ErrTokenReused) {
		t.Fatalf("replay = %v, want ErrTokenReused", err)
	}
	if _, err := db.RotateRefreshToken([]byte("t2"), &RefreshToken{Hash: []byte("t4"), ExpiresAt: farFuture}, now0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("sibling after reuse = %v, want ErrNotFound", err)
	}
}

func TestRefreshExpired(t *testing.T) {
	db := openTemp(t)
	db.PutRefreshToken(&RefreshToken{Hash: []byte("t1"), UserID: 1, Family: "f", ExpiresAt: now0.Add(time.Minute)}, now0)
	_, err := db.RotateRefreshToken([]byte("t1"), &RefreshToken{Hash: []byte("t2")}, now0.Add(2*time.Minute))
	if !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("rotate expired = %v", err)
	}
}

func TestRevokeRefreshTokensOfUser(t *testing.T) {
	db := openTemp(t)
	db.PutRefreshToken(&RefreshToken{Hash: []byte("a"), UserID: 1, Family: "f1", ExpiresAt: farFuture}, now0)
	db.PutRefreshToken(&RefreshToken{Hash: []byte("b"), UserID: 2, Family: "f2", ExpiresAt: farFuture}, now0)
	if err := db.RevokeRefreshTokens(1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RotateRefreshToken([]byte("a"), &RefreshToken{Hash: []byte("a2")}, now0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token = %v", err)
	}
	if _, err := db.RotateRefreshToken([]byte("b"), &RefreshToken{Hash: []byte("b2"), ExpiresAt: farFuture}, now0); err != nil {
		t.Fatalf("other user's token = %v", err)
	}
}
