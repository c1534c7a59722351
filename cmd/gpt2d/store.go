package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"gpt2d/auth"
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
	return store.Open(spec, store.Options{Logger: log})
}

// sharedCounters returns the throttle counters replicas share when the
// store is shared (PostgreSQL), else nil: a bbolt store has one process,
// whose in-memory counters are the whole truth.
func sharedCounters(db store.Store) store.CounterStore {
	if pg, ok := db.(*postgres.DB); ok {
		return pg.Counters()
	}
	return nil
}

// sharedQuota returns the token-quota reservations replicas share when
// the store is shared (PostgreSQL), else nil (kept in process).
func sharedQuota(db store.Store) store.QuotaStore {
	if pg, ok := db.(*postgres.DB); ok {
		return pg
	}
	return nil
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
		return errUsage
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fmt.Fprint(stdout, storeUsage)
		return nil
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
	case "copy":
		b := newBinder("store copy", os.Getenv, stderr)
		from := b.fs.String("from", "", "bbolt store file to copy (the server using it stopped)")
		to := b.fs.String("to", "", "postgres:// URL of the target database (password in PGPASSWORD or ~/.pgpass, not here)")
		if err := b.parse(args[1:]); err != nil {
			return err
		}
		if *from == "" || !postgres.IsURL(*to) {
			fmt.Fprint(stderr, storeUsage)
			return fmt.Errorf("%w: store copy: want --from PATH and --to postgres://URL", errUsage)
		}
		return copyStore(ctx, *from, *to, stdout)
	}
	fmt.Fprintf(stderr, "gpt2d store: unknown command %q\n\n%s", args[0], storeUsage)
	return errUsage
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
	db, err := store.Open(spec, store.Options{Logger: slog.New(slog.NewTextHandler(stdout, nil))})
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

// copyStore copies every record of the bbolt store at from into the
// PostgreSQL database at to (in one transaction, idempotently: a second
// run rewrites the same records), then reads the target back and compares
// it with the source kind by kind, printing counts and checksums. A
// difference is an error.
func copyStore(ctx context.Context, from, to string, stdout io.Writer) error {
	src, err := store.Open(from, store.Options{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("store copy: %w", lockedHint(err))
	}
	defer src.Close()
	dst, err := postgres.Open(ctx, to, postgres.Options{CacheTTL: -1, Logger: slog.New(slog.NewTextHandler(stdout, nil))})
	if err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	defer dst.Close()
	d, err := src.Dump()
	if err != nil {
		return fmt.Errorf("store copy: read %s: %w", from, err)
	}
	keyNote := ""
	if d.JWTKey == nil {
		// The bbolt store keeps its signing key in a file beside it: it
		// moves into the database, which is where replicas without a key
		// file of their own find it, so access tokens stay valid.
		if k, err := auth.ReadKeyFile(auth.DefaultKeyFile(from)); err == nil {
			d.JWTKey, keyNote = k, "the JWT signing key of "+auth.DefaultKeyFile(from)+" is now kept in the database"
		}
	}
	if err := dst.Import(d); err != nil {
		return fmt.Errorf("store copy: %w", err)
	}
	back, err := dst.Dump()
	if err != nil {
		return fmt.Errorf("store copy: verify: %w", err)
	}
	want, got := d.Sections(), back.Sections()
	fmt.Fprintf(stdout, "%-15s %8s  %-64s  %s\n", "RECORDS", "COUNT", "SHA-256", "TARGET")
	bad := 0
	for i, w := range want {
		verdict := "equal"
		if got[i] != w {
			verdict = fmt.Sprintf("DIFFERS: %d records, sha256 %s", got[i].Count, got[i].SHA256)
			bad++
		}
		fmt.Fprintf(stdout, "%-15s %8d  %s  %s\n", w.Name, w.Count, w.SHA256, verdict)
	}
	if bad > 0 {
		return fmt.Errorf("store copy: verification failed: %d kinds of record differ (does the target hold records of another install?)", bad)
	}
	fmt.Fprintf(stdout, "copied and verified: %s → %s\n", from, dst.Where())
	switch {
	case keyNote != "":
		fmt.Fprintln(stdout, "note:", keyNote)
	case d.JWTKey == nil:
		fmt.Fprintln(stdout, "note: no JWT signing key was copied; replicas share the one the database makes, or a --jwt-secret-file")
	}
	return nil
}
