package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Event is one entry of the audit trail. The store offers no way to change
// or delete an event once appended.
type Event struct {
	Seq    uint64         `json:"seq"`
	Time   time.Time      `json:"time"`
	Action string         `json:"action"`           // e.g. "login.failure", "user.role_change"
	Actor  string         `json:"actor,omitempty"`  // username of who acted, if known
	Target string         `json:"target,omitempty"` // what was acted on, e.g. a username
	IP     string         `json:"ip,omitempty"`
	Detail map[string]any `json:"detail,omitempty"` // never passwords or prompt text
}

// AppendAudit appends e, assigning e.Seq. Concurrent appends are coalesced
// into shared transactions (bbolt Batch), so a burst of events costs one
// fsync rather than one each; the call still returns only once e is
// durable.
func (db *DB) AppendAudit(e *Event) error {
	return db.bolt.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.Seq = seq
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(itob(seq), v)
	})
}

// ListAudit returns up to limit events, newest first, with Seq < before
// (before 0 means from the newest).
func (db *DB) ListAudit(before uint64, limit int) ([]Event, error) {
	events := []Event{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			// Seek lands on the first key ≥ before; the one to start from
			// is just ahead of it, or the last key if none is ≥ before.
			if k, _ = c.Seek(itob(before)); k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		for ; k != nil && len(events) < limit; k, v = c.Prev() {
			var e Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("audit %d: %w", btoi(k), err)
			}
			events = append(events, e)
		}
		return nil
	})
	return events, err
}
