package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/text/secure/precis"
)

// FoldUsername is the key usernames are unique under: PRECIS
// UsernameCaseMapped (RFC 8265: width-mapped, lower-cased, NFC), so
// "Alice", "alice" and "ａlice" are one account name and none can
// impersonate another. A name the profile refuses — only names stored
// before usernames were checked as identities can be such — folds to its
// lower case, the key it was stored under.
func FoldUsername(name string) string {
	if k, err := precis.UsernameCaseMapped.String(name); err == nil {
		return k
	}
	return LowerUsername(name)
}

// LowerUsername is the key names were stored under before FoldUsername
// followed PRECIS (strings.ToLower): "ｂｏｂ" stayed "ｂｏｂ", apart from
// "bob". An account whose lower-cased name differs from its folded one
// keeps it as an alias, so that every spelling that reached it before
// still does, and nobody else can register it.
func LowerUsername(name string) string { return strings.ToLower(name) }

// UsernameKeys is where one account sits in the username index.
//
// The index is a function of the set of accounts, the same in every
// store: among the accounts whose names fold to one key, the oldest
// (lowest id) holds the key; the others are shadowed by it. Shadowed
// accounts exist only where names were registered before folding
// followed PRECIS (schema 5 of the bbolt file and of PostgreSQL found
// them, e.g. "ｂｏｂ" and "bob"): no account is ever merged or deleted
// for it, and a new name that folds to any existing one is refused. An
// account keeps its lower-cased name as an alias where that differs from
// the key it holds, or where it is shadowed; lookups try the alias
// first, so a shadowed account stays reachable by the spelling it was
// registered with, as before.
type UsernameKeys struct {
	// Folded is the account's folded name if it holds it, "" if an older
	// account does.
	Folded string
	// Alias is the account's lower-cased name if it is kept as an alias,
	// else "".
	Alias string
	// ShadowedBy is the id of the older account holding the folded name,
	// 0 if none.
	ShadowedBy uint64
}

// Unreachable reports whether the account can be found by no name: it
// is shadowed and its alias belongs to another account. Such accounts
// are kept (an admin reaches them by id) and reported.
func (k UsernameKeys) Unreachable() bool { return k.Folded == "" && k.Alias == "" }

// IndexUsernames returns the index keys of users, which must be every
// account of a store in id order (creation order).
func IndexUsernames(users []User) []UsernameKeys {
	keys := make([]UsernameKeys, len(users))
	holder := map[string]uint64{}
	for i, u := range users {
		f := FoldUsername(u.Username)
		if h, ok := holder[f]; ok {
			keys[i].ShadowedBy = h
			continue
		}
		holder[f] = u.ID
		keys[i].Folded = f
	}
	aliased := map[string]bool{}
	for i, u := range users {
		f, l := FoldUsername(u.Username), LowerUsername(u.Username)
		if l == keys[i].Folded || aliased[l] {
			continue
		}
		// Another account's folded name is that account's, unless it is
		// this account's own (then the account holding it is older).
		if _, held := holder[l]; held && l != f {
			continue
		}
		aliased[l] = true
		keys[i].Alias = l
	}
	return keys
}

// ShadowEvent is the audit event recording that u, with keys k, is
// shadowed by the older account holder (see UsernameKeys). Admins find
// these with GET /admin/audit (action "user.username_shadowed").
func ShadowEvent(u, holder User, k UsernameKeys, at time.Time) *Event {
	return &Event{Time: at, Action: "user.username_shadowed", Target: u.Username, Detail: map[string]any{
		"user_id": u.ID, "held_by_user_id": holder.ID, "held_by": holder.Username,
		"folded": FoldUsername(u.Username), "reachable_as": k.Alias,
	}}
}

// userIDByName finds name's user id: by its alias first (the spelling a
// shadowed account was registered with), then by its folded key.
func userIDByName(tx *bolt.Tx, name string) []byte {
	if id := tx.Bucket(bucketUsernameAliases).Get([]byte(LowerUsername(name))); id != nil {
		return id
	}
	return tx.Bucket(bucketUsernames).Get([]byte(FoldUsername(name)))
}

// usernameTaken reports whether a new account may not take name: its
// folded or lower-cased form is a key or an alias of an existing one.
func usernameTaken(tx *bolt.Tx, name string) bool {
	for _, b := range []*bolt.Bucket{tx.Bucket(bucketUsernames), tx.Bucket(bucketUsernameAliases)} {
		if b.Get([]byte(FoldUsername(name))) != nil || b.Get([]byte(LowerUsername(name))) != nil {
			return true
		}
	}
	return false
}

// putUsername indexes a new account, whose name usernameTaken allowed.
func putUsername(tx *bolt.Tx, u *User) error {
	f, l := FoldUsername(u.Username), LowerUsername(u.Username)
	if err := tx.Bucket(bucketUsernames).Put([]byte(f), itob(u.ID)); err != nil {
		return err
	}
	if l != f {
		return tx.Bucket(bucketUsernameAliases).Put([]byte(l), itob(u.ID))
	}
	return nil
}

// dropUsername removes u's index entries. If u held its folded name and
// an account it shadowed remains, the oldest such takes the name over.
func dropUsername(tx *bolt.Tx, u *User) error {
	names, aliases := tx.Bucket(bucketUsernames), tx.Bucket(bucketUsernameAliases)
	id := itob(u.ID)
	f, l := []byte(FoldUsername(u.Username)), []byte(LowerUsername(u.Username))
	if bytes.Equal(aliases.Get(l), id) {
		if err := aliases.Delete(l); err != nil {
			return err
		}
	}
	if !bytes.Equal(names.Get(f), id) {
		return nil
	}
	if err := names.Delete(f); err != nil {
		return err
	}
	// Shadowed accounts all have aliases; there are few of them.
	var heir *User
	err := aliases.ForEach(func(_, v []byte) error {
		o, err := getUser(tx.Bucket(bucketUsers), btoi(v))
		if err != nil || FoldUsername(o.Username) != string(f) || (heir != nil && heir.ID < o.ID) {
			return err
		}
		heir = o
		return nil
	})
	if err != nil || heir == nil {
		return err
	}
	if err := names.Put(f, itob(heir.ID)); err != nil {
		return err
	}
	if hl := []byte(LowerUsername(heir.Username)); bytes.Equal(hl, f) {
		return aliases.Delete(hl)
	}
	return nil
}

// reindexUsernames rebuilds the username index from the accounts under
// the current FoldUsername (schema 4 → 5): files written before it keyed
// names by LowerUsername, so "ｂｏｂ" and "bob" could be two accounts.
// Each shadowed account gets an audit event (ShadowEvent) in the same
// transaction; their keys are returned for the log.
func reindexUsernames(tx *bolt.Tx, at time.Time) ([]UsernameKeys, []User, error) {
	var users []User
	err := tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
		var u User
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("user %d: %w", btoi(k), err)
		}
		users = append(users, u)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, name := range [][]byte{bucketUsernames, bucketUsernameAliases} {
		if tx.Bucket(name) != nil {
			if err := tx.DeleteBucket(name); err != nil {
				return nil, nil, err
			}
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return nil, nil, err
		}
	}
	names, aliases := tx.Bucket(bucketUsernames), tx.Bucket(bucketUsernameAliases)
	keys := IndexUsernames(users)
	byID := map[uint64]User{}
	for i, u := range users {
		byID[u.ID] = u
		k := keys[i]
		if k.Folded != "" {
			if err := names.Put([]byte(k.Folded), itob(u.ID)); err != nil {
				return nil, nil, err
			}
		}
		if k.Alias != "" {
			if err := aliases.Put([]byte(k.Alias), itob(u.ID)); err != nil {
				return nil, nil, err
			}
		}
		if k.ShadowedBy != 0 {
			if err := appendAuditTx(tx, ShadowEvent(u, byID[k.ShadowedBy], k, at)); err != nil {
				return nil, nil, err
			}
		}
	}
	return keys, users, nil
}

// logShadowed logs each shadowed or unreachable account of a re-index.
func logShadowed(log *slog.Logger, keys []UsernameKeys, users []User) {
	for i, k := range keys {
		if k.ShadowedBy == 0 {
			continue
		}
		u := users[i]
		if k.Unreachable() {
			log.Error("username collision: account reachable by id only (delete one of the two, or keep it)",
				"user_id", u.ID, "username", u.Username, "held_by_user_id", k.ShadowedBy)
			continue
		}
		log.Warn("username collision: the older account keeps the folded name; this one logs in as registered",
			"user_id", u.ID, "username", u.Username, "held_by_user_id", k.ShadowedBy, "reachable_as", k.Alias)
	}
}
