package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Dump is every durable record of a store, for moving an install from one
// store to another (gpt2d store copy). Each list is in primary-key order:
// users and keys by id, refresh-token families by user and family
// (bytewise), audit by seq, usage by user, day and key.
type Dump struct {
	JWTKey []byte // nil: the store holds none
	// Sequences are the last id given out to users and API keys and the
	// last audit seq (≥ the largest held: ids of deleted records are
	// never given out again).
	Sequences     Sequences
	Users         []User
	APIKeys       []APIKey
	RefreshTokens []RefreshToken // one per family: its live token
	Audit         []Event
	Usage         []Usage
}

// Sequences are a store's id counters.
type Sequences struct {
	Users, APIKeys, Audit uint64
}

// Section is the summary of one kind of record in a Dump.
type Section struct {
	Name   string
	Count  int
	SHA256 string // hex, over the records' canonical encoding in order
}

// Sections summarises d, kind by kind, so that two stores can be compared
// record for record: equal sections mean equal records (ids, hashes,
// families and times to the nanosecond included).
func (d *Dump) Sections() []Section {
	sec := func(name string, n int, enc func(i int) []byte) Section {
		h := sha256.New()
		for i := range n {
			b := enc(i)
			fmt.Fprintf(h, "%d:", len(b))
			h.Write(b)
		}
		return Section{Name: name, Count: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	}
	js := func(v any) []byte {
		b, _ := json.Marshal(v) // these types always marshal
		return b
	}
	jwt := 0
	if d.JWTKey != nil {
		jwt = 1
	}
	return []Section{
		sec("jwt_key", jwt, func(int) []byte { return d.JWTKey }),
		sec("sequences", 3, func(i int) []byte {
			return []byte(fmt.Sprint([]uint64{d.Sequences.Users, d.Sequences.APIKeys, d.Sequences.Audit}[i]))
		}),
		sec("users", len(d.Users), func(i int) []byte { return js(d.Users[i]) }),
		sec("api_keys", len(d.APIKeys), func(i int) []byte { return js(d.APIKeys[i]) }),
		sec("refresh_tokens", len(d.RefreshTokens), func(i int) []byte {
			t := d.RefreshTokens[i]
			return append(fmt.Appendf(nil, "%d %s ", t.UserID, t.Family), js(t)...) // user and family are not in the JSON
		}),
		sec("audit", len(d.Audit), func(i int) []byte { return js(d.Audit[i]) }),
		sec("usage", len(d.Usage), func(i int) []byte { return js(d.Usage[i]) }),
	}
}

// Dump reads every record in one read transaction: a consistent
// snapshot, taken without blocking writers.
func (db *DB) Dump() (*Dump, error) {
	d := &Dump{Users: []User{}, APIKeys: []APIKey{}, RefreshTokens: []RefreshToken{}, Audit: []Event{}, Usage: []Usage{}}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		if k := tx.Bucket(bucketMeta).Get(keyJWTKey); k != nil {
			d.JWTKey = append([]byte(nil), k...)
		}
		d.Sequences = Sequences{Users: tx.Bucket(bucketUsers).Sequence(), APIKeys: tx.Bucket(bucketKeys).Sequence(),
			Audit: tx.Bucket(bucketAudit).Sequence()}
		if err := tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("user %d: %w", btoi(k), err)
			}
			d.Users = append(d.Users, u)
			return nil
		}); err != nil {
			return err
		}
		if err := eachKey(tx, func(k *APIKey) error { d.APIKeys = append(d.APIKeys, *k); return nil }); err != nil {
			return err
		}
		if err := tx.Bucket(bucketFamilies).ForEach(func(k, v []byte) error {
			t, err := parseFamily(k, v)
			if err == nil {
				d.RefreshTokens = append(d.RefreshTokens, *t)
			}
			return err
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketAudit).ForEach(func(k, v []byte) error {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("audit %d: %w", btoi(k), err)
			}
			d.Audit = append(d.Audit, e)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketUsage).ForEach(func(k, v []byte) error {
			u, err := parseUsage(k, v)
			if err != nil {
				return err
			}
			d.Usage = append(d.Usage, u)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("dump: %w", err)
	}
	return d, nil
}
