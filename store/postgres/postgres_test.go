package postgres

import (
	"context"
	"log/slog"
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
	db, err := Open(context.Background(), pgtest.NewDatabase(t), Options{Logger: quiet})
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

// quiet discards the log lines of stores opened by tests.
var quiet = slog.New(slog.DiscardHandler)
