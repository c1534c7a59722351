package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
	"gpt2d/store/pgtest"
)

func TestSchemaVersionMatchesMigrations(t *testing.T) {
	if SchemaVersion != len(migrations) {
		t.Fatalf("SchemaVersion = %d, but there are %d migration steps", SchemaVersion, len(migrations))
	}
}

// TestConcurrentOpensMigrateOnce starts several stores on one empty
// database at once, as replicas starting together do: every one opens,
// and each migration step is applied exactly once.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(context.Background(), url, Options{})
			if err == nil {
				db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	conn := connect(t, url)
	var rows, distinct, max int
	if err := conn.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT version), max(version) FROM gpt2d_schema`).Scan(&rows, &distinct, &max); err != nil {
		t.Fatal(err)
	}
	if rows != SchemaVersion || distinct != SchemaVersion || max != SchemaVersion {
		t.Fatalf("gpt2d_schema has %d rows (%d versions, max %d), want each of %d versions once", rows, distinct, max, SchemaVersion)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	db, err := Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	conn := connect(t, url)
	if _, err := conn.Exec(context.Background(), `INSERT INTO gpt2d_schema (version) VALUES ($1)`, SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), url, Options{}); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
}

func TestNoMigrateRefusesOlderSchema(t *testing.T) {
	url := pgtest.NewDatabase(t)
	_, err := Open(context.Background(), url, Options{NoMigrate: true})
	if err == nil || !strings.Contains(err.Error(), "gpt2d store migrate") {
		t.Fatalf("Open of an empty database without migrating = %v", err)
	}
	db, err := Open(context.Background(), url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(context.Background(), url, Options{NoMigrate: true})
	if err != nil {
		t.Fatalf("Open of a migrated database without migrating = %v", err)
	}
	if v, err := db.Version(); v != SchemaVersion || err != nil {
		t.Fatalf("Version = %d, %v", v, err)
	}
	db.Close()
}

func TestOpenErrorHidesPassword(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:s3cret-pw@127.0.0.1:1/db?connect_timeout=1", Options{})
	if err == nil {
		t.Fatal("opened a database on port 1")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Fatalf("error shows the password: %v", err)
	}
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("unreachable database = %v, want ErrUnavailable", err)
	}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestMigrationMovesLiveRefreshTokensToFamilies migrates a schema-3
// database holding a used and a live refresh token: the live one still
// rotates, the used one is gone.
func TestMigrationMovesLiveRefreshTokensToFamilies(t *testing.T) {
	url := pgtest.NewDatabase(t)
	conn := connect(t, url)
	ctx := context.Background()
	for _, q := range []string{schemaTable, migrations[0], migrations[1], migrations[2], `INSERT INTO gpt2d_schema (version) VALUES (1), (2), (3)`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		hash string
		used bool
	}{{"used-hash-used-hash-used-hash-32", true}, {"live-hash-live-hash-live-hash-32", false}} {
		data := fmt.Sprintf(`{"user_id":5,"family":"fam","created_at":"2030-01-01T00:00:00.000000123Z","expires_at":"2030-01-02T00:00:00Z","used":%v}`, r.used)
		if _, err := conn.Exec(ctx, `INSERT INTO refresh_tokens (hash, user_id, family, expires_at, used, data) VALUES ($1, 5, 'fam', '2030-01-02T00:00:00Z', $2, $3)`,
			[]byte(r.hash), r.used, data); err != nil {
			t.Fatal(err)
		}
	}
	db, err := Open(ctx, url, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Date(2030, 1, 1, 1, 0, 0, 0, time.UTC)
	next := &store.RefreshToken{Hash: []byte("next"), ExpiresAt: now.Add(time.Hour)}
	if _, err := db.RotateRefreshToken([]byte("used-hash-used-hash-used-hash-32"), 0, "", next, now); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("used token after migration = %v, want ErrNotFound", err)
	}
	old, err := db.RotateRefreshToken([]byte("live-hash-live-hash-live-hash-32"), 0, "", next, now)
	if err != nil || old.UserID != 5 || old.Family != "fam" || old.StartedAt.Nanosecond() != 123 {
		t.Fatalf("live token after migration = %+v, %v", old, err)
	}
}
