package postgres

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"

	"gpt2d/store"
)

// invalidateChannel is the channel the schema's triggers notify on.
const invalidateChannel = "gpt2d_invalidate"

// cache keeps users by id and API keys by hash in this replica's memory:
// every authenticated request reads its user (and key), and the database
// is shared by all replicas.
//
// Invariant: an entry is served only while the listener is connected and
// has been since the entry was read, and for at most ttl after the read.
// Every change that could revoke access (a user updated or deleted, a key
// revoked) notifies invalidateChannel at commit (the schema's triggers),
// and the listener drops the entry on receipt: another replica's logout
// is seen here within the notification's delay. When the listening
// connection is lost the whole cache is dropped and bypassed until it is
// back; the ttl bounds staleness should notifications stall without the
// connection failing (a network partition).
//
// A read that raced with an invalidation must not repopulate the cache
// with the value it read before the change: entries are stored only if
// no invalidation happened since the read began (epoch unchanged).
type cache struct {
	ttl time.Duration
	max int
	now func() time.Time // the clock entries' ages are read on

	mu    sync.Mutex
	live  bool
	epoch uint64
	users map[uint64]cached[store.User]
	keys  map[string]cached[store.APIKey]
}

type cached[T any] struct {
	v  T
	at time.Time
}

// newCache returns an empty cache whose entries live ttl on the clock now
// (nil → time.Now).
func newCache(ttl time.Duration, now func() time.Time) *cache {
	if now == nil {
		now = time.Now
	}
	return &cache{ttl: ttl, max: 100_000, now: now, users: map[uint64]cached[store.User]{}, keys: map[string]cached[store.APIKey]{}}
}

// begin returns the epoch to pass to put after reading from the database.
func (c *cache) begin() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.epoch
}

func (c *cache) user(id uint64) (*store.User, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.users[id]
	if !ok || !c.live || c.now().Sub(e.at) > c.ttl {
		return nil, false
	}
	u := e.v
	return &u, true
}

func (c *cache) putUser(u *store.User, epoch uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || c.epoch != epoch {
		return
	}
	if len(c.users) >= c.max {
		clear(c.users)
	}
	c.users[u.ID] = cached[store.User]{*u, at}
}

func (c *cache) key(hash []byte) (*store.APIKey, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.keys[string(hash)]
	if !ok || !c.live || c.now().Sub(e.at) > c.ttl {
		return nil, false
	}
	k := e.v
	return &k, true
}

func (c *cache) putKey(k *store.APIKey, epoch uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || c.epoch != epoch {
		return
	}
	if len(c.keys) >= c.max {
		clear(c.keys)
	}
	c.keys[string(k.Hash)] = cached[store.APIKey]{*k, at}
}

// invalidate drops what a notification payload names: "user:<id>" or
// "key:<hex sha256>"; anything else drops everything.
func (c *cache) invalidate(payload string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	kind, arg, _ := strings.Cut(payload, ":")
	switch kind {
	case "user":
		if id, err := strconv.ParseUint(arg, 10, 64); err == nil {
			delete(c.users, id)
			return
		}
	case "key":
		if h, err := hex.DecodeString(arg); err == nil {
			delete(c.keys, string(h))
			return
		}
	}
	clear(c.users)
	clear(c.keys)
}

// setLive drops every entry and records whether notifications arrive.
func (c *cache) setLive(live bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.live = live
	clear(c.users)
	clear(c.keys)
}

// HandleNotification implements pgxlisten.Handler.
func (c *cache) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	c.invalidate(n.Payload)
	return nil
}

// HandleBacklog implements pgxlisten.BacklogHandler: it runs each time
// the listener has (re)connected and is listening, which is when the
// cache may be used again — empty, since changes made while it was away
// were not heard.
func (c *cache) HandleBacklog(context.Context, string, *pgx.Conn) error {
	c.setLive(true)
	return nil
}

// listen runs the listener until ctx ends, on its own connection (not
// the pool's), reconnecting every second while the database is away.
func (db *DB) listen(ctx context.Context) {
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig.Copy())
		},
		LogError: func(ctx context.Context, err error) {
			db.cache.setLive(false)
			if ctx.Err() == nil {
				db.log.Warn("store: cache invalidation listener lost; cache bypassed until it is back", "err", err)
			}
		},
		ReconnectDelay: time.Second,
	}
	l.Handle(invalidateChannel, db.cache)
	l.Listen(ctx)
	db.cache.setLive(false)
}
