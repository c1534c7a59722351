package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Usage is what one user spent through one credential on one UTC day.
// Records are keyed user id | day | key id, so one user's days are
// adjacent and in date order.
type Usage struct {
	Day    time.Time `json:"day"` // midnight UTC
	UserID uint64    `json:"user_id"`
	KeyID  uint64    `json:"key_id"` // 0: a session (JWT), else an API key
	Counts
}

// Counts are the counters of a Usage record.
type Counts struct {
	Requests         int64 `json:"requests"`
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// Add adds o to c.
func (c *Counts) Add(o Counts) {
	c.Requests += o.Requests
	c.PromptTokens += o.PromptTokens
	c.CompletionTokens += o.CompletionTokens
}

// Tokens is prompt plus completion tokens.
func (c Counts) Tokens() int64 { return c.PromptTokens + c.CompletionTokens }

// Day returns the UTC day t falls on, as its midnight.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

const dayLayout = "20060102"

func usageKey(user uint64, day time.Time, key uint64) []byte {
	k := make([]byte, 0, 24)
	k = append(k, itob(user)...)
	k = day.UTC().AppendFormat(k, dayLayout)
	return append(k, itob(key)...)
}

func parseUsage(k, v []byte) (Usage, error) {
	if len(k) != 24 {
		return Usage{}, fmt.Errorf("usage key %x: bad length", k)
	}
	day, err := time.Parse(dayLayout, string(k[8:16]))
	if err != nil {
		return Usage{}, fmt.Errorf("usage key %x: %w", k, err)
	}
	u := Usage{Day: day, UserID: btoi(k[:8]), KeyID: btoi(k[16:])}
	if err := json.Unmarshal(v, &u.Counts); err != nil {
		return Usage{}, fmt.Errorf("usage %x: %w", k, err)
	}
	return u, nil
}

// AddUsage adds every record's counts to the stored ones of the same user,
// day (Day of the record's Day) and key, in one write transaction.
func (db *DB) AddUsage(records []Usage) error {
	if len(records) == 0 {
		return nil
	}
	return db.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUsage)
		for _, r := range records {
			k := usageKey(r.UserID, Day(r.Day), r.KeyID)
			var c Counts
			if v := b.Get(k); v != nil {
				if err := json.Unmarshal(v, &c); err != nil {
					return fmt.Errorf("usage %x: %w", k, err)
				}
			}
			c.Add(r.Counts)
			v, err := json.Marshal(c)
			if err != nil {
				return err
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

// UsageOf returns the records of one user from day from to day to
// (inclusive, UTC), in date then key order.
func (db *DB) UsageOf(userID uint64, from, to time.Time) ([]Usage, error) {
	out := []Usage{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketUsage).Cursor()
		end := usageKey(userID, Day(to), 1<<64-1)
		for k, v := c.Seek(usageKey(userID, Day(from), 0)); k != nil && bytes.Compare(k, end) <= 0; k, v = c.Next() {
			u, err := parseUsage(k, v)
			if err != nil {
				return err
			}
			out = append(out, u)
		}
		return nil
	})
	return out, err
}

// AllUsage returns every user's records from day from to day to
// (inclusive, UTC), in user, date and key order. It scans the whole
// bucket, which holds at most one record per user, credential and day.
func (db *DB) AllUsage(from, to time.Time) ([]Usage, error) {
	from, to = Day(from), Day(to)
	out := []Usage{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsage).ForEach(func(k, v []byte) error {
			u, err := parseUsage(k, v)
			if err != nil {
				return err
			}
			if !u.Day.Before(from) && !u.Day.After(to) {
				out = append(out, u)
			}
			return nil
		})
	})
	return out, err
}

// DayTokens returns the tokens (prompt and completion) a user spent on
// the UTC day of t, over all credentials.
func (db *DB) DayTokens(userID uint64, t time.Time) (int64, error) {
	records, err := db.UsageOf(userID, t, t)
	var n int64
	for _, r := range records {
		n += r.Tokens()
	}
	return n, err
}
