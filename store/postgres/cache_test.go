package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gpt2d/store"
	"gpt2d/store/pgtest"
)

// replicas opens two stores on one database, as two gpt2d processes
// would, with the given cache TTL.
func replicas(t *testing.T, ttl time.Duration) (a, b *DB, url string) {
	t.Helper()
	return replicasWith(t, Options{CacheTTL: ttl})
}

// replicasWith is replicas with more options (quiet logger added).
func replicasWith(t *testing.T, opts Options) (a, b *DB, url string) {
	t.Helper()
	url = pgtest.NewDatabase(t)
	opts.Logger = quiet
	open := func() *DB {
		db, err := Open(context.Background(), url, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	return open(), open(), url
}

// waitLive waits until db's cache listener is connected, so that what is
// read next is cached.
func waitLive(t *testing.T, db *DB) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		db.cache.mu.Lock()
		live := db.cache.live
		db.cache.mu.Unlock()
		if live {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("cache listener never connected")
		}
	}
}

// eventually polls cond until it holds, failing after a generous deadline
// that only a missing mechanism (not a slow machine) would exceed.
func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%s: not after %s", what, time.Since(start))
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// TestChangesOnOneReplicaReachTheOthersCache revokes on A what B has
// cached, with a TTL so long that only the notification can explain B
// noticing: a logout, a disable and a key revocation.
func TestChangesOnOneReplicaReachTheOthersCache(t *testing.T) {
	a, b, _ := replicas(t, time.Hour)
	waitLive(t, b)
	u := &store.User{Username: "alice", Role: store.RoleUser}
	if err := a.CreateUser(u); err != nil {
		t.Fatal(err)
	}
	k := &store.APIKey{UserID: u.ID, Hash: []byte("alice-key")}
	if err := a.CreateAPIKey(k); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UserByID(u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := b.APIKeyByHash(k.Hash); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.cache.user(u.ID); !ok {
		t.Fatal("B did not cache the user")
	}

	logout := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := a.UpdateUser(u.ID, func(u *store.User) error { u.TokensValidAfter = logout; return nil }); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "B sees A's logout", func() bool {
		got, err := b.UserByID(u.ID)
		return err == nil && got.TokensValidAfter.Equal(logout)
	})
	t.Logf("logout on A seen by B after %s", took)

	if err := a.DeleteAPIKey(u.ID, k.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B refuses the key A revoked", func() bool {
		_, err := b.APIKeyByHash(k.Hash)
		return err == store.ErrNotFound
	})

	// Recording a key's use is not a change that invalidates.
	k2 := &store.APIKey{UserID: u.ID, Hash: []byte("alice-key-2")}
	if err := a.CreateAPIKey(k2); err != nil {
		t.Fatal(err)
	}
	if _, err := b.APIKeyByHash(k2.Hash); err != nil {
		t.Fatal(err)
	}
	epoch := b.cache.begin()
	if err := a.TouchAPIKeys(map[uint64]time.Time{k2.ID: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpdateUser(u.ID, func(u *store.User) error { u.Disabled = true; return nil }); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B sees the disable", func() bool {
		got, err := b.UserByID(u.ID)
		return err == nil && got.Disabled
	})
	if _, ok := b.cache.key(k2.Hash); !ok {
		t.Fatalf("touching a key dropped it from B's cache (epoch %d → %d)", epoch, b.cache.begin())
	}
}

// manualClock is a cache clock that moves only when told.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestCacheTTLBackstopsLostNotifications changes a user behind the
// triggers' back: B keeps serving its cached copy for the TTL, not a
// moment longer. The TTL runs on a clock the test moves, so however long
// the change takes on a loaded machine, the entry is still cached after.
func TestCacheTTLBackstopsLostNotifications(t *testing.T) {
	const ttl = 300 * time.Millisecond
	clk := &manualClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	a, b, url := replicasWith(t, Options{CacheTTL: ttl, now: clk.Now})
	waitLive(t, b)
	u := &store.User{Username: "bob", Role: store.RoleUser}
	if err := a.CreateUser(u); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UserByID(u.ID); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	if _, err := conn.Exec(context.Background(), `
ALTER TABLE users DISABLE TRIGGER users_invalidate;
UPDATE users SET data = jsonb_set(data, '{disabled}', 'true'), disabled = true WHERE id = `+fmt.Sprint(u.ID)+`;
ALTER TABLE users ENABLE TRIGGER users_invalidate;`); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.UserByID(u.ID); got.Disabled {
		t.Fatal("B read the database: the user was not cached")
	}
	clk.Advance(ttl)
	if got, _ := b.UserByID(u.ID); got.Disabled {
		t.Fatal("B dropped its cached user before the TTL was over")
	}
	clk.Advance(time.Nanosecond)
	if got, err := b.UserByID(u.ID); err != nil || !got.Disabled {
		t.Fatalf("B still serves its cached user after the TTL: %+v, %v", got, err)
	}
}

// TestCacheBypassedWhileListenerIsDown cuts B's listening connection:
// until it is back, B reads every user from the database, so a change
// it could not hear of is seen at once.
func TestCacheBypassedWhileListenerIsDown(t *testing.T) {
	a, b, url := replicas(t, time.Hour)
	waitLive(t, b)
	u := &store.User{Username: "carol", Role: store.RoleUser}
	if err := a.CreateUser(u); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UserByID(u.ID); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	admin := connect(t, strings.Replace(url, "/"+conn.Config().Database+"?", "/postgres?", 1))
	ctx := context.Background()
	// Hold the listener down: terminate it and make reconnecting fail by
	// refusing new connections to the database for a moment.
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+conn.Config().Database+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid() AND query ILIKE 'listen%'`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B notices its listener is gone", func() bool {
		b.cache.mu.Lock()
		defer b.cache.mu.Unlock()
		return !b.cache.live
	})
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+conn.Config().Database+` ALLOW_CONNECTIONS true`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `
ALTER TABLE users DISABLE TRIGGER users_invalidate;
UPDATE users SET data = jsonb_set(data, '{disabled}', 'true'), disabled = true WHERE id = `+fmt.Sprint(u.ID)+`;
ALTER TABLE users ENABLE TRIGGER users_invalidate;`); err != nil {
		t.Fatal(err)
	}
	// Either the listener is still away (cache bypassed) or it came back
	// (cache emptied on reconnect): B reads the change either way.
	if got, err := b.UserByID(u.ID); err != nil || !got.Disabled {
		t.Fatalf("B served a stale user while its listener was down: %+v, %v", got, err)
	}
	waitLive(t, b)
}
