package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store"
)

// nullable turns "" into SQL NULL.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// reindexUsernames sets every account's username_folded and
// username_lower by store.IndexUsernames (schema 4 → 5): databases
// written before it keyed names by store.LowerUsername. Each shadowed
// account gets an audit event (store.ShadowEvent) in the same
// transaction and a log line.
func reindexUsernames(ctx context.Context, tx pgx.Tx, log *slog.Logger) error {
	var users []store.User
	rows, err := tx.Query(ctx, `SELECT id, data FROM users ORDER BY id`)
	if err != nil {
		return err
	}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return err
		}
		users = append(users, *u)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	// Cleared first: keys move between accounts, and both columns are
	// unique.
	if _, err := tx.Exec(ctx, `UPDATE users SET username_folded = NULL, username_lower = NULL`); err != nil {
		return err
	}
	keys := store.IndexUsernames(users)
	byID := map[uint64]store.User{}
	now := time.Now().UTC()
	for i, u := range users {
		byID[u.ID] = u
		k := keys[i]
		if _, err := tx.Exec(ctx, `UPDATE users SET username_folded = $2, username_lower = $3 WHERE id = $1`,
			u.ID, nullable(k.Folded), nullable(k.Alias)); err != nil {
			return err
		}
		if k.ShadowedBy == 0 {
			continue
		}
		if err := appendAuditTx(ctx, tx, store.ShadowEvent(u, byID[k.ShadowedBy], k, now)); err != nil {
			return err
		}
		log.Warn("username collision: the older account keeps the folded name; this one logs in as registered (empty: by id only)",
			"user_id", u.ID, "username", u.Username, "held_by_user_id", k.ShadowedBy, "reachable_as", k.Alias)
	}
	return nil
}

// promoteShadowed hands the folded name a deleted account held to the
// oldest account it shadowed, if any (see store.UsernameKeys).
func promoteShadowed(ctx context.Context, tx pgx.Tx, folded string) error {
	rows, err := tx.Query(ctx, `SELECT id, data FROM users WHERE username_folded IS NULL ORDER BY id`)
	if err != nil {
		return err
	}
	var heir uint64
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			rows.Close()
			return err
		}
		if store.FoldUsername(u.Username) == folded {
			heir = u.ID
			break
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || heir == 0 {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE users SET username_folded = $2, username_lower = NULLIF(username_lower, $2) WHERE id = $1`, heir, folded)
	return err
}
