package api

import (
	"context"
	"flag"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/store"
	"gpt2d/store/pgtest"
	"gpt2d/store/postgres"
)

// storeEnv selects the store every test server of this package uses:
// "postgres" for a fresh database of the test cluster, else a bbolt file.
// TestHTTPSuitesOnPostgres sets it to run the whole package again.
const storeEnv = "GPT2D_TEST_STORE"

func onPostgres() bool { return os.Getenv(storeEnv) == "postgres" }

// openTestStore opens an empty store of the kind the run uses, closed
// when t ends.
func openTestStore(t testing.TB) store.Store {
	t.Helper()
	var db store.Store
	var err error
	if onPostgres() {
		db, err = postgres.Open(context.Background(), pgtest.NewDatabase(t), postgres.Options{Logger: slog.New(slog.DiscardHandler)})
	} else {
		db, err = store.Open(filepath.Join(t.TempDir(), "gpt2d.db"), store.Options{})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// shareLimits makes a server on a PostgreSQL store keep its throttles,
// request rates and token quotas in the database, as gpt2d serve does, so
// that the limits suites run through the shared implementations there.
func shareLimits(cfg *Config, acfg *auth.Config) {
	pg, ok := cfg.Store.(*postgres.DB)
	if !ok {
		return
	}
	if cfg.Counters == nil {
		cfg.Counters = pg.Counters()
	}
	if acfg.Throttle.Store == nil {
		acfg.Throttle.Store = pg.Counters()
	}
	if cfg.RequestRates == nil {
		cfg.RequestRates = pg.Counters()
	}
	if cfg.Quota == nil {
		cfg.Quota = pg
	}
}

// storeSize is the bytes a store takes: the bbolt file, or the
// PostgreSQL database.
func storeSize(t *testing.T, db store.Store) int64 {
	t.Helper()
	switch db := db.(type) {
	case *store.DB:
		fi, err := os.Stat(db.Path())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	case *postgres.DB:
		n, err := db.Size()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("unknown store %T", db)
	return 0
}

// boltOnly skips a test of something only the bbolt store has (a
// snapshot file) in the PostgreSQL run; the PostgreSQL behaviour has its
// own test.
func boltOnly(t *testing.T) {
	t.Helper()
	if onPostgres() {
		t.Skip("bbolt store only; see the PostgreSQL counterpart")
	}
}

// TestHTTPSuitesOnPostgres runs every other test of this package again
// (the same -run and -short), in a child process whose test servers keep
// their state in PostgreSQL: the HTTP contract, security and limits
// suites hold for both stores.
func TestHTTPSuitesOnPostgres(t *testing.T) {
	if onPostgres() {
		t.Skip("this is the PostgreSQL run")
	}
	c := pgtest.Shared(t)
	args := []string{"-test.count=1", "-test.skip=^TestHTTPSuitesOnPostgres$"}
	for _, name := range []string{"test.run", "test.short", "test.timeout", "test.v"} {
		if f := flag.Lookup(name); f != nil {
			args = append(args, "-"+name+"="+f.Value.String())
		}
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), storeEnv+"=postgres", c.Env())
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("package tests on PostgreSQL failed: %v\n%s", err, out)
	}
	t.Logf("package tests passed on PostgreSQL in %s (%d lines of output)", time.Since(start).Round(time.Second), strings.Count(string(out), "\n"))
}

// startOnPostgres is start with a PostgreSQL store whatever the run.
func startOnPostgres(t *testing.T, opts ...option) *testServer {
	t.Helper()
	if !onPostgres() {
		pgtest.Shared(t)
		t.Setenv(storeEnv, "postgres")
	}
	return start(t, opts...)
}

func TestAdminBackupOnPostgresNamesPgDump(t *testing.T) {
	ts := startOnPostgres(t)
	adminTok := ts.admin("root")
	r := ts.get("/admin/backup", adminTok)
	wantStatus(t, r, 409)
	if d, _ := r.detail(t).(string); !strings.Contains(d, "pg_dump") {
		t.Fatalf("detail = %q, want it to name pg_dump", d)
	}
	if h := ts.get("/health", ""); !strings.Contains(string(h.body), `"store":"postgres"`) {
		t.Fatalf("/health = %s", h.body)
	}
}

// TestReplicaLosingTheStoreAnswers503AndRecovers kills the PostgreSQL
// server under a running replica: a generation already streaming
// finishes; routes that need the store answer 503 with Retry-After
// (never 500, never a crash), /health reports it; once the database is
// back the replica serves again by itself, with the same tokens.
func TestReplicaLosingTheStoreAnswers503AndRecovers(t *testing.T) {
	if onPostgres() {
		t.Skip("always on PostgreSQL: run once, by the parent run")
	}
	c, err := pgtest.Start() // its own cluster: this test stops it
	if err != nil {
		pgtest.Unavailable(t, err)
	}
	t.Cleanup(c.Stop)
	db, err := postgres.Open(context.Background(), c.NewDatabase(t), postgres.Options{OpTimeout: 3 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ts := start(t, func(cfg *Config, _ *auth.Config) { cfg.Store = db })
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	wantStatus(t, ts.get("/users/me", tok), 200)

	stream := ts.openStream("/generate", tok, map[string]any{"prompt": "Once upon a time", "max_new_tokens": 100,
		"stream": true, "seed": 1}, nil)
	defer stream.Body.Close()
	wantStatus(t, response{status: stream.StatusCode}, 200)
	first := make([]byte, 1)
	if _, err := io.ReadFull(stream.Body, first); err != nil {
		t.Fatal(err)
	}

	c.Kill()
	rest, err := io.ReadAll(stream.Body)
	if err != nil || !strings.Contains(string(rest), "event: done") {
		t.Fatalf("admitted stream cut when the store went away: %v\n%s", err, rest)
	}
	for _, r := range []response{
		ts.get("/users/me", tok),
		ts.postForm("/token", url.Values{"username": {"user"}, "password": {"userpassword"}}),
		ts.postJSON("/generate", tok, map[string]any{"prompt": "hello"}),
		ts.get("/health", ""),
	} {
		if r.status != 503 || r.header.Get("Retry-After") == "" {
			t.Fatalf("with the store down: %d (Retry-After %q) %s, want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
		}
	}
	if h := ts.get("/health", ""); !strings.Contains(string(h.body), `"store_unavailable"`) {
		t.Fatalf("/health = %s", h.body)
	}

	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for ts.get("/users/me", tok).status != 200 {
		if time.Now().After(deadline) {
			r := ts.get("/users/me", tok)
			t.Fatalf("replica did not recover after the database came back: %d %s\n%s", r.status, r.body, ts.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	wantStatus(t, ts.get("/health", ""), 200)
	ts.login("user", "userpassword")
	if strings.Contains(ts.logs.String(), `"level":"ERROR"`) && strings.Contains(ts.logs.String(), "panic") {
		t.Fatalf("panic logged:\n%s", ts.logs.String())
	}
}
