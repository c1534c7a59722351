package postgres

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
)

// Counters is the store.CounterStore of the database: the login
// throttles and registration budgets of every replica count in one
// table, so N replicas refuse what one would.
type Counters struct {
	db    *DB
	calls atomic.Uint64
}

var _ store.CounterStore = (*Counters)(nil)

// Counters returns the database's throttle counters.
func (db *DB) Counters() *Counters { return &Counters{db: db} }

// sweepEvery is how many Updates pass between deletions of every expired
// counter (Update deletes the expired counters it touches; this bounds
// the table by the keys of the last expiry period).
const sweepEvery = 256

// Update implements store.CounterStore in one transaction: the rows of
// keys are created if missing and locked (SELECT … FOR UPDATE) in key
// order — so concurrent Updates on overlapping keys, from any replica,
// run one after another and cannot deadlock — then fn's counters are
// written back, and the expired ones deleted.
func (c *Counters) Update(now time.Time, keys []string, fn func(cs []store.Counter) []store.Counter) error {
	uniq := slices.Clone(keys)
	slices.Sort(uniq)
	uniq = slices.Compact(uniq)
	nowNS := unixNS(now)
	err := c.db.inTx("counters", func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO counters (key, failures, in_flight, last_ns, expires_ns)
SELECT k, 0, 0, 0, 0 FROM unnest($1::text[]) AS k ORDER BY k ON CONFLICT (key) DO NOTHING`, uniq); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT key, failures, in_flight, last_ns, expires_ns FROM counters
WHERE key = ANY($1) ORDER BY key FOR UPDATE`, uniq)
		if err != nil {
			return err
		}
		held := make(map[string]store.Counter, len(uniq))
		for rows.Next() {
			var key string
			var failures, inFlight, last, expires int64
			if err := rows.Scan(&key, &failures, &inFlight, &last, &expires); err != nil {
				rows.Close()
				return err
			}
			if expires > nowNS {
				held[key] = store.Counter{Failures: int(failures), InFlight: int(inFlight), Last: fromNS(last), Expires: fromNS(expires)}
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		cs := make([]store.Counter, len(keys))
		for i, k := range keys {
			cs[i] = held[k]
		}
		out := fn(cs)
		final := make(map[string]store.Counter, len(uniq)) // a key listed twice keeps its last counter
		for i, k := range keys {
			final[k] = out[i]
		}
		b := &pgx.Batch{}
		for _, k := range uniq {
			o := final[k]
			if !o.Expires.After(now) {
				b.Queue(`DELETE FROM counters WHERE key = $1`, k)
				continue
			}
			b.Queue(`UPDATE counters SET failures = $2, in_flight = $3, last_ns = $4, expires_ns = $5 WHERE key = $1`,
				k, int64(o.Failures), int64(o.InFlight), unixNS(o.Last), unixNS(o.Expires))
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err == nil && c.calls.Add(1)%sweepEvery == 0 {
		ctx, cancel := c.db.ctx()
		defer cancel()
		c.db.pool.Exec(ctx, `DELETE FROM counters WHERE expires_ns <= $1`, nowNS) // best effort: retried next sweep
	}
	return err
}

// unixNS is t in Unix nanoseconds, 0 for the zero time.
func unixNS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}
