package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	if _, err := db.PutRefreshToken(&RefreshToken{Hash: []byte("h"), Family: "f", ExpiresAt: time.Now().Add(time.Hour)}, 0, time.Now()); err != nil {
		t.Fatalf("refresh bucket missing after migration: %v", err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.update(func(tx *bolt.Tx) error {
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

func TestOpenRefusesADamagedFile(t *testing.T) {
	// A store with some data, as the server leaves it.
	good := filepath.Join(t.TempDir(), "good.db")
	db, err := Open(good, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		db.CreateUser(&User{Username: "user" + strconv.Itoa(i), Role: RoleUser, PasswordHash: bytes.Repeat([]byte("x"), 60)})
	}
	db.Close()
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	pageSize := os.Getpagesize()
	tests := []struct {
		name   string
		damage func() []byte
	}{
		{"empty", func() []byte { return nil }},
		{"truncated", func() []byte { return data[:len(data)/2] }},
		{"both meta pages zeroed", func() []byte {
			b := bytes.Clone(data)
			clear(b[:2*pageSize])
			return b
		}},
		{"the freelist page overwritten", func() []byte {
			b := bytes.Clone(data)
			for p := 2; p*pageSize < len(b); p++ {
				copy(b[p*pageSize:], bytes.Repeat([]byte{0xA5}, 64))
			}
			return b
		}},
		{"tree pages overwritten", func() []byte {
			// Garbage over every page but the metas and the freelist that
			// the newer meta page (by txid) names: only a walk of the tree
			// (tx.Check) finds it.
			b := bytes.Clone(data)
			le := binary.LittleEndian
			m := 16
			if le.Uint64(b[pageSize+16+48:]) > le.Uint64(b[16+48:]) {
				m = pageSize + 16
			}
			freelist := int(le.Uint64(b[m+32:]))
			for p := 2; p*pageSize < len(b); p++ {
				if p != freelist {
					copy(b[p*pageSize+16:], bytes.Repeat([]byte{0xA5}, 64))
				}
			}
			return b
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "damaged.db")
			if err := os.WriteFile(path, tt.damage(), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, ro := range []bool{false, true} {
				db, err := Open(path, Options{ReadOnly: ro})
				if err == nil {
					db.Close()
					t.Fatalf("read-only %v: opened a damaged file", ro)
				}
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) {
					t.Fatalf("read-only %v: error %v; want ErrCorrupt naming %s", ro, err, path)
				}
			}
			if fi, _ := os.Stat(path); tt.name == "empty" && fi.Size() != 0 {
				t.Fatal("the empty file was initialised as a new store")
			}
		})
	}
}
