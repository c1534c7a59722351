package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"gpt2d/store"
	"gpt2d/store/postgres"
)

// errPGBackup is the answer of `gpt2d backup` for a PostgreSQL store.
var errPGBackup = errors.New("backup: the store is PostgreSQL: back it up with its own tools (pg_dump), not gpt2d backup")

// openStore opens the store spec names: a postgres:// URL (migrated to
// this build's schema under an advisory lock) or a bbolt file path.
func openStore(ctx context.Context, spec string, log *slog.Logger) (store.Store, error) {
	if postgres.IsURL(spec) {
		return postgres.Open(ctx, spec, postgres.Options{Logger: log})
	}
	return store.Open(spec, store.Options{})
}

// openStoreForCLI opens the store for a one-shot command. A bbolt file
// held by a running server gets a hint; readOnly opens a bbolt file
// without taking the writer's lock.
func openStoreForCLI(spec string, readOnly bool) (store.Store, error) {
	if postgres.IsURL(spec) {
		return postgres.Open(context.Background(), spec, postgres.Options{NoMigrate: readOnly,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	}
	db, err := store.Open(spec, store.Options{ReadOnly: readOnly})
	if err != nil {
		return nil, lockedHint(err)
	}
	return db, nil
}

const storeUsage = `usage:
  gpt2d store migrate [--store URL|PATH]       bring the store's schema to this build's version
  gpt2d store copy --from PATH --to URL        copy a bbolt store into a PostgreSQL database
`

// runStore implements `gpt2d store migrate|copy`.
func runStore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, storeUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "migrate":
		var cfg Config
		b := newBinder("store migrate", os.Getenv, stderr)
		cfg.bindStore(b)
		if err := b.parse(args[1:]); err != nil {
			return err
		}
		return migrateStore(ctx, cfg.Data, stdout)
	}
	fmt.Fprintf(stderr, "gpt2d store: unknown command %q\n\n%s", args[0], storeUsage)
	return flag.ErrHelp
}

// migrateStore opens the store, which migrates it (once, under a lock,
// however many replicas start at the same time), and reports the version.
func migrateStore(ctx context.Context, spec string, stdout io.Writer) error {
	if postgres.IsURL(spec) {
		db, err := postgres.Open(ctx, spec, postgres.Options{Logger: slog.New(slog.NewTextHandler(stdout, nil))})
		if err != nil {
			return fmt.Errorf("store migrate: %w", err)
		}
		defer db.Close()
		v, err := db.Version()
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "postgres store at schema version %d (this build: %d)\n", v, postgres.SchemaVersion)
		return nil
	}
	db, err := store.Open(spec, store.Options{})
	if err != nil {
		return fmt.Errorf("store migrate: %w", lockedHint(err))
	}
	defer db.Close()
	v, err := db.Version()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bbolt store %s at schema version %d (this build: %d)\n", spec, v, store.SchemaVersion)
	return nil
}
