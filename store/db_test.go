package store

import (
	"bytes"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "sub", "gpt2d.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSchemaVersionMatchesMigrations(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion = %d, but there are %d migration steps", SchemaVersion, len(migrations))
	}
}

func TestOpenMigratesOldFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	// A version-1 file, as the first release wrote it: no refresh bucket.
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		if err := migrations[0](tx); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte("1"))
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
	if v, _ := db.Version(); v != SchemaVersion {
		t.Fatalf("version after open = %d, want %d", v, SchemaVersion)
	}
	if err := db.PutRefreshToken(&RefreshToken{Hash: []byte("h"), ExpiresAt: time.Now().Add(time.Hour)}, time.Now()); err != nil {
		t.Fatalf("refresh bucket missing after migration: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchemaVersion, []byte(strconv.Itoa(SchemaVersion+1)))
	})
	db.Close()
	if _, err := Open(path, Options{}); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
}

func TestOpenLockedFileFailsWithErrLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := Open(path, Options{Timeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestEnsureJWTKeyGeneratesOnce(t *testing.T) {
	db := openTemp(t)
	calls := 0
	gen := func() ([]byte, error) { calls++; return bytes.Repeat([]byte{byte(calls)}, 32), nil }
	k1, err := db.EnsureJWTKey(gen)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := db.EnsureJWTKey(gen)
	if calls != 1 || !bytes.Equal(k1, k2) {
		t.Fatalf("generated %d times; keys equal: %v", calls, bytes.Equal(k1, k2))
	}
}

func TestBackupIsAnOpenableSnapshot(t *testing.T) {
	db := openTemp(t)
	if err := db.CreateUser(&User{Username: "alice", Role: RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "backup.db")
	if err := db.Backup(dst); err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot do not reach it.
	db.CreateUser(&User{Username: "bob"})
	snap, err := Open(dst, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	if _, err := snap.UserByUsername("alice"); err != nil {
		t.Fatalf("alice missing from backup: %v", err)
	}
	if _, err := snap.UserByUsername("bob"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("bob in backup: %v", err)
	}
}
