package postgres

import (
	"context"
	"os"
	"testing"

	"gpt2d/store"
	"gpt2d/store/pgtest"
	"gpt2d/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openTest opens a store on a fresh database of the shared test cluster.
func openTest(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), pgtest.NewDatabase(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestConformance holds the PostgreSQL store to the behaviour every
// store.Store has (the bbolt store runs the same suite).
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTest(t) })
}
