package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
)

// AppendAudit appends e, assigning e.Seq. Appends take a transaction-
// scoped advisory lock, so sequence numbers are committed in increasing
// order across replicas: a reader paging with ListAudit never sees a
// lower number appear behind a higher one it has already passed.
func (db *DB) AppendAudit(e *store.Event) error {
	return db.inTx("append audit", func(ctx context.Context, tx pgx.Tx) error {
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
	})
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
