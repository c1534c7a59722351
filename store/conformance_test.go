package store_test

import (
	"path/filepath"
	"testing"

	"gpt2d/store"
	"gpt2d/store/storetest"
)

// TestConformance holds the bbolt store to the behaviour every store.Store
// has (the PostgreSQL store runs the same suite).
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		db, err := store.Open(filepath.Join(t.TempDir(), "gpt2d.db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
