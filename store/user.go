package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Role is a user's permission level.
type Role string

// The roles a user can have.
const (
	RoleUser  Role = "user"
	RoleAdmin Role = "admin"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleUser || r == RoleAdmin }

// User is an account. PasswordHash is a bcrypt hash and never leaves the
// server.
type User struct {
	ID           uint64    `json:"id"`
	Username     string    `json:"username"`
	PasswordHash []byte    `json:"password_hash"`
	Role         Role      `json:"role"`
	Disabled     bool      `json:"disabled,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	// TokensValidAfter invalidates every access token issued at or before
	// it. It moves forward on logout, password change, role change and
	// disabling.
	TokensValidAfter time.Time `json:"tokens_valid_after"`
	// KeysDisarmedBefore disarms every API key of the user created at or
	// before it. Disabling the user sets it, so that re-enabling does not
	// bring the old keys back; an admin may clear it (re-arm).
	KeysDisarmedBefore time.Time `json:"keys_disarmed_before,omitzero"`
	// Limits overrides the rate limits of the user's role; nil keeps them.
	Limits *Limits `json:"limits,omitempty"`
}

// Limits overrides a user's rate limits. A nil field keeps the role's
// default; 0 means unlimited.
type Limits struct {
	RequestsPerMinute *int64 `json:"requests_per_minute,omitempty"`
	TokensPerDay      *int64 `json:"tokens_per_day,omitempty"`
}

// activeAdmin reports whether u counts toward the "at least one admin"
// invariant.
func (u *User) activeAdmin() bool { return u.Role == RoleAdmin && !u.Disabled }

// CreateUser stores u, assigning u.ID. The uniqueness check and the insert
// happen in one write transaction, so of any number of concurrent calls
// with the same (folded) username exactly one succeeds and the others get
// ErrUsernameTaken. A name is taken when it folds to, or lower-cases to,
// a key or alias of any existing account (see UsernameKeys).
func (db *DB) CreateUser(u *User) error {
	return db.update(func(tx *bolt.Tx) error {
		if usernameTaken(tx, u.Username) {
			return ErrUsernameTaken
		}
		users := tx.Bucket(bucketUsers)
		id, err := users.NextSequence()
		if err != nil {
			return err
		}
		u.ID = id
		if err := putUser(users, u); err != nil {
			return err
		}
		return putUsername(tx, u)
	})
}

// UserByID returns the user with id, or ErrNotFound.
func (db *DB) UserByID(id uint64) (*User, error) {
	var u *User
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		u, err = getUser(tx.Bucket(bucketUsers), id)
		return err
	})
	return u, err
}

// UserByUsername returns the user whose alias or, failing that, folded
// name matches (see UsernameKeys), or ErrNotFound.
func (db *DB) UserByUsername(name string) (*User, error) {
	var u *User
	err := db.bolt.View(func(tx *bolt.Tx) error {
		id := userIDByName(tx, name)
		if id == nil {
			return ErrNotFound
		}
		var err error
		u, err = getUser(tx.Bucket(bucketUsers), btoi(id))
		return err
	})
	return u, err
}

// ListUsers returns up to limit users in id order, skipping the first skip.
func (db *DB) ListUsers(skip, limit int) ([]User, error) {
	users := []User{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUsers).Cursor()
		for k, v := c.First(); k != nil && len(users) < limit; k, v = c.Next() {
			if skip > 0 {
				skip--
				continue
			}
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("user %d: %w", btoi(k), err)
			}
			users = append(users, u)
		}
		return nil
	})
	return users, err
}

// CountUsers returns the number of users.
func (db *DB) CountUsers() (int, error) {
	var n int
	err := db.bolt.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketUsers).Stats().KeyN
		return nil
	})
	return n, err
}

// UpdateUser applies fn to the user with id and stores the result, all in
// one write transaction. fn must not change ID or Username. If the change
// would leave the store without an enabled admin while it had one, nothing
// is stored and ErrLastAdmin is returned. An error from fn aborts the
// update and is returned as is.
func (db *DB) UpdateUser(id uint64, fn func(u *User) error) (*User, error) {
	var out *User
	err := db.update(func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		u, err := getUser(users, id)
		if err != nil {
			return err
		}
		wasAdmin := u.activeAdmin()
		if err := fn(u); err != nil {
			return err
		}
		u.ID = id
		if wasAdmin && !u.activeAdmin() {
			if err := requireOtherAdmin(users, id); err != nil {
				return err
			}
		}
		out = u
		return putUser(users, u)
	})
	return out, err
}

// DeleteUser removes the user with id, its username, its refresh tokens
// and its API keys. Deleting the last enabled admin fails with
// ErrLastAdmin. Audit events that name the user and its usage records are
// kept.
func (db *DB) DeleteUser(id uint64) error {
	return db.update(func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		u, err := getUser(users, id)
		if err != nil {
			return err
		}
		if u.activeAdmin() {
			if err := requireOtherAdmin(users, id); err != nil {
				return err
			}
		}
		if err := users.Delete(itob(id)); err != nil {
			return err
		}
		if err := dropUsername(tx, u); err != nil {
			return err
		}
		if err := deleteKeysOf(tx, id); err != nil {
			return err
		}
		return deleteFamiliesOf(tx, id)
	})
}

// requireOtherAdmin returns ErrLastAdmin unless an enabled admin other than
// id exists. It scans all users: O(users), acceptable at the sizes a single
// inference server has, and exact because it runs inside the writer's
// transaction.
func requireOtherAdmin(users *bolt.Bucket, id uint64) error {
	c := users.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if btoi(k) == id {
			continue
		}
		var u User
		if err := json.Unmarshal(v, &u); err != nil {
			return fmt.Errorf("user %d: %w", btoi(k), err)
		}
		if u.activeAdmin() {
			return nil
		}
	}
	return ErrLastAdmin
}

// HasAdmin reports whether an enabled admin exists.
func (db *DB) HasAdmin() (bool, error) {
	var found bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		err := requireOtherAdmin(tx.Bucket(bucketUsers), 0)
		if err == nil {
			found = true
			return nil
		}
		if err == ErrLastAdmin {
			return nil
		}
		return err
	})
	return found, err
}

func getUser(users *bolt.Bucket, id uint64) (*User, error) {
	v := users.Get(itob(id))
	if v == nil {
		return nil, ErrNotFound
	}
	var u User
	if err := json.Unmarshal(v, &u); err != nil {
		return nil, fmt.Errorf("user %d: %w", id, err)
	}
	return &u, nil
}

func putUser(users *bolt.Bucket, u *User) error {
	v, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return users.Put(itob(u.ID), v)
}
