package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
)

// AppendAudit appends e, assigning e.Seq. Appends take a transaction-
// scoped advisory lock, so sequence numbers are committed in increasing
// order across replicas: a reader paging with ListAudit never sees a
// lower number appear behind a higher one it has already passed.
func (db *DB) AppendAudit(e *store.Event) error {
	return db.inTx("append audit", func(ctx context.Context, tx pgx.Tx) error { return appendAuditTx(ctx, tx, e) })
}

// appendAuditTx appends e within tx, assigning e.Seq.
func appendAuditTx(ctx context.Context, tx pgx.Tx, e *store.Event) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockAudit); err != nil {
		return err
	}
	if err := tx.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('audit', 'seq'))`).Scan(&e.Seq); err != nil {
		return err
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO audit (seq, time, data) VALUES ($1, $2, $3)`, e.Seq, e.Time, data)
	return err
}

// ListAudit returns up to limit events, newest first, with Seq < before
// (before 0 means from the newest).
func (db *DB) ListAudit(before uint64, limit int) ([]store.Event, error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var rows pgx.Rows
	var err error
	if before == 0 {
		rows, err = db.pool.Query(ctx, `SELECT seq, data FROM audit ORDER BY seq DESC LIMIT $1`, limit)
	} else {
		rows, err = db.pool.Query(ctx, `SELECT seq, data FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2`, before, limit)
	}
	if err != nil {
		return nil, wrap("list audit", err)
	}
	defer rows.Close()
	events := []store.Event{}
	for rows.Next() {
		var seq uint64
		var data []byte
		if err := rows.Scan(&seq, &data); err != nil {
			return nil, wrap("list audit", err)
		}
		var e store.Event
		if err := json.Unmarshal(data, &e); err != nil {
			return nil, fmt.Errorf("audit %d: %w", seq, err)
		}
		e.Seq = seq
		events = append(events, e)
	}
	return events, wrap("list audit", rows.Err())
}

// pruneChunk bounds the events one pruning statement deletes.
const pruneChunk = 5000

// PruneAudit deletes the oldest events beyond r as of now, as the bbolt
// store does: every event below the newest MaxEvents, then older events
// up to the first one younger than MaxAge, never one from the middle. It
// deletes in statements of at most pruneChunk rows; appends go on
// meanwhile (their seqs are above any bound computed here).
func (db *DB) PruneAudit(r store.AuditRetention, now time.Time) (int, error) {
	if r.MaxAge <= 0 && r.MaxEvents <= 0 {
		return 0, nil
	}
	total := 0
	for {
		ctx, cancel := db.ctx()
		// bound: events with seq < bound go. keep_from keeps the newest
		// MaxEvents; the age scan stops at the first young event at or
		// past it.
		tag, err := db.pool.Exec(ctx, `
WITH keep AS (
	SELECT CASE WHEN $1::bigint > 0 THEN coalesce(max(seq), 0) - $1::bigint + 1 ELSE 0 END AS keep_from FROM audit
), bound AS (
	SELECT CASE WHEN $2::boolean
		THEN coalesce((SELECT min(seq) FROM audit, keep WHERE seq >= keep.keep_from AND time >= $3), (SELECT coalesce(max(seq), 0) + 1 FROM audit))
		ELSE (SELECT keep_from FROM keep) END AS b
)
DELETE FROM audit WHERE seq IN (
	SELECT seq FROM audit, bound WHERE seq < bound.b ORDER BY seq LIMIT $4)`,
			int64(r.MaxEvents), r.MaxAge > 0, now.Add(-r.MaxAge), pruneChunk)
		cancel()
		if err != nil {
			return total, wrap("prune audit", err)
		}
		n := int(tag.RowsAffected())
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

// AuditBounds returns the lowest and highest seq stored.
func (db *DB) AuditBounds() (first, last uint64, err error) {
	ctx, cancel := db.ctx()
	defer cancel()
	var lo, hi int64
	err = db.pool.QueryRow(ctx, `SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) FROM audit`).Scan(&lo, &hi)
	return uint64(lo), uint64(hi), wrap("audit bounds", err)
}
