package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
)

// Import writes every record of d into the database in one transaction,
// keeping ids, sequence numbers, hashes and families, so that users keep
// their passwords, API keys and sessions. It is idempotent: a record that
// exists (same primary key) is overwritten with d's version, so importing
// the same dump twice leaves the same database. A record that clashes
// with a different one already there (a username or key hash held under
// another id) aborts the import with an error naming it; nothing is then
// written. Identity sequences are moved past the imported ids.
func (db *DB) Import(d *store.Dump) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		if d.JWTKey != nil {
			b.Queue(`INSERT INTO meta (key, value) VALUES ('jwt_key', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, d.JWTKey)
		}
		// Names that fold alike (accounts from before PRECIS folding)
		// are indexed as the source indexes them: the oldest holds the
		// folded name, the others keep their aliases.
		keys := store.IndexUsernames(d.Users)
		for i, u := range d.Users {
			data, err := json.Marshal(u)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO users (id, username_folded, username_lower, role, disabled, data) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (id) DO UPDATE SET username_folded = excluded.username_folded, username_lower = excluded.username_lower,
	role = excluded.role, disabled = excluded.disabled, data = excluded.data`,
				u.ID, nullable(keys[i].Folded), nullable(keys[i].Alias), string(u.Role), u.Disabled, data)
		}
		for _, k := range d.APIKeys {
			data, err := json.Marshal(k)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO api_keys (id, user_id, hash, data) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id, hash = excluded.hash, data = excluded.data`,
				k.ID, k.UserID, k.Hash, data)
		}
		for _, t := range d.RefreshTokens {
			data, err := json.Marshal(t)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO refresh_families (user_id, family, hash, started_at, expires_at, data) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id, family) DO UPDATE SET hash = excluded.hash, started_at = excluded.started_at,
	expires_at = excluded.expires_at, data = excluded.data`,
				t.UserID, t.Family, t.Hash, t.StartedAt, t.ExpiresAt, data)
		}
		for _, e := range d.Audit {
			data, err := json.Marshal(e)
			if err != nil {
				return err
			}
			b.Queue(`INSERT INTO audit (seq, time, data) VALUES ($1, $2, $3)
ON CONFLICT (seq) DO UPDATE SET time = excluded.time, data = excluded.data`, e.Seq, e.Time, data)
		}
		for _, u := range d.Usage {
			b.Queue(`INSERT INTO usage (user_id, day, key_id, requests, prompt_tokens, completion_tokens) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (user_id, day, key_id) DO UPDATE SET requests = excluded.requests,
	prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens`,
				u.UserID, store.Day(u.Day), u.KeyID, u.Requests, u.PromptTokens, u.CompletionTokens)
		}
		for _, seq := range sequences(d.Sequences) {
			// Never move a sequence backwards, nor below an id held.
			b.Queue(fmt.Sprintf(`SELECT setval(pg_get_serial_sequence('%[1]s', '%[2]s'), m)
FROM (SELECT greatest($1::bigint, (SELECT max(%[2]s) FROM %[1]s)) AS m) s
WHERE m > (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM %[3]s)`, seq.table, seq.col, seq.seq), seq.last)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if isUniqueViolation(err) {
		return fmt.Errorf("import: a record clashes with a different one already in the database (copy into an empty database): %w", err)
	}
	return wrap("import", err)
}

type sequence struct {
	table, col, seq string
	last            uint64
}

// sequences names the identity sequences (PostgreSQL's names for them)
// with the last values of s.
func sequences(s store.Sequences) []sequence {
	return []sequence{{"users", "id", "users_id_seq", s.Users}, {"api_keys", "id", "api_keys_id_seq", s.APIKeys},
		{"audit", "seq", "audit_seq_seq", s.Audit}}
}

// Dump reads every record in one REPEATABLE READ transaction: a
// consistent snapshot, in the order store.Dump documents.
func (db *DB) Dump() (*store.Dump, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	d := &store.Dump{Users: []store.User{}, APIKeys: []store.APIKey{}, RefreshTokens: []store.RefreshToken{},
		Audit: []store.Event{}, Usage: []store.Usage{}}
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'jwt_key'`).Scan(&d.JWTKey)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		for _, seq := range sequences(store.Sequences{}) {
			p := map[string]*uint64{"users": &d.Sequences.Users, "api_keys": &d.Sequences.APIKeys, "audit": &d.Sequences.Audit}[seq.table]
			if err := tx.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM `+seq.seq).Scan(p); err != nil {
				return err
			}
		}
		if err := each(ctx, tx, `SELECT id, data FROM users ORDER BY id`, func(r pgx.Rows) error {
			u, err := scanUser(r)
			if err == nil {
				d.Users = append(d.Users, *u)
			}
			return err
		}); err != nil {
			return err
		}
		if err := each(ctx, tx, `SELECT id, hash, data FROM api_keys ORDER BY id`, func(r pgx.Rows) error {
			k, err := scanKey(r)
			if err == nil {
				d.APIKeys = append(d.APIKeys, *k)
			}
			return err
		}); err != nil {
			return err
		}
		// COLLATE "C": bytewise, the bbolt store's key order.
		if err := each(ctx, tx, `SELECT `+familyColumns+` FROM refresh_families ORDER BY user_id, family COLLATE "C"`, func(r pgx.Rows) error {
			t, err := scanFamily(r)
			if err == nil {
				d.RefreshTokens = append(d.RefreshTokens, *t)
			}
			return err
		}); err != nil {
			return err
		}
		if err := each(ctx, tx, `SELECT seq, data FROM audit ORDER BY seq`, func(r pgx.Rows) error {
			var seq uint64
			var data []byte
			if err := r.Scan(&seq, &data); err != nil {
				return err
			}
			var e store.Event
			if err := json.Unmarshal(data, &e); err != nil {
				return fmt.Errorf("audit %d: %w", seq, err)
			}
			e.Seq = seq
			d.Audit = append(d.Audit, e)
			return nil
		}); err != nil {
			return err
		}
		return each(ctx, tx, `SELECT user_id, day, key_id, requests, prompt_tokens, completion_tokens FROM usage
ORDER BY user_id, day, key_id`, func(r pgx.Rows) error {
			var u store.Usage
			if err := r.Scan(&u.UserID, &u.Day, &u.KeyID, &u.Requests, &u.PromptTokens, &u.CompletionTokens); err != nil {
				return err
			}
			u.Day = store.Day(u.Day)
			d.Usage = append(d.Usage, u)
			return nil
		})
	})
	if err != nil {
		return nil, wrap("dump", err)
	}
	return d, nil
}

// each calls fn for every row of a query.
func each(ctx context.Context, tx pgx.Tx, sql string, fn func(pgx.Rows) error) error {
	rows, err := tx.Query(ctx, sql)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
