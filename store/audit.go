package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Event is one entry of the audit trail. The store offers no way to change
// an event once appended, nor to delete one except by age and count
// (PruneAudit), oldest first: the trail is always a suffix of the events
// ever appended, so paging by Seq stays valid across pruning.
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
	return db.batch(func(tx *bolt.Tx) error { return appendAuditTx(tx, e) })
}

// appendAuditTx appends e within tx, assigning e.Seq.
func appendAuditTx(tx *bolt.Tx, e *Event) error {
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

// AuditRetention bounds the audit trail. A zero field means no bound.
type AuditRetention struct {
	// MaxAge drops events older than this.
	MaxAge time.Duration
	// MaxEvents keeps at most this many of the newest events.
	MaxEvents int
}

// pruneChunk bounds the events one pruning transaction deletes, so that
// a first prune of a large trail does not hold the writer lock for long.
const pruneChunk = 5000

// PruneAudit deletes the oldest events beyond r, as of now, and returns
// how many. Events are deleted from the oldest on, in transactions of at
// most pruneChunk deletions, and never from the middle: Seq numbers are
// not reused, so a client paging with ListAudit(before, …) sees no
// duplicates, only the end of the trail arriving sooner. Appends may run
// concurrently. Event times are the appenders' clocks: an event is kept
// while any older-Seq event is younger than MaxAge (the scan stops at the
// first young one).
func (db *DB) PruneAudit(r AuditRetention, now time.Time) (int, error) {
	total := 0
	for {
		n, more, err := db.pruneAuditChunk(r, now)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

func (db *DB) pruneAuditChunk(r AuditRetention, now time.Time) (n int, more bool, err error) {
	if r.MaxAge <= 0 && r.MaxEvents <= 0 {
		return 0, false, nil
	}
	cutoff := now.Add(-r.MaxAge)
	err = db.update(func(tx *bolt.Tx) error {
		n, more = 0, false
		b := tx.Bucket(bucketAudit)
		c := b.Cursor()
		last, _ := c.Last()
		if last == nil {
			return nil
		}
		// Keys are sequence numbers, so keeping the newest MaxEvents
		// means keeping Seq > last − MaxEvents (gaps only make it fewer).
		var keepFrom uint64
		if r.MaxEvents > 0 && btoi(last) > uint64(r.MaxEvents) {
			keepFrom = btoi(last) - uint64(r.MaxEvents) + 1
		}
		for k, v := c.First(); k != nil; k, v = c.First() {
			if n == pruneChunk {
				more = true
				return nil
			}
			if btoi(k) >= keepFrom {
				if r.MaxAge <= 0 {
					return nil
				}
				var e struct {
					Time time.Time `json:"time"`
				}
				if err := json.Unmarshal(v, &e); err != nil {
					return fmt.Errorf("audit %d: %w", btoi(k), err)
				}
				if !e.Time.Before(cutoff) {
					return nil
				}
			}
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		n, more = 0, false
	}
	return n, more, err
}

// AuditBounds returns the lowest and highest Seq stored (0, 0 when the
// trail is empty).
func (db *DB) AuditBounds() (first, last uint64, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		if k, _ := c.First(); k != nil {
			first = btoi(k)
		}
		if k, _ := c.Last(); k != nil {
			last = btoi(k)
		}
		return nil
	})
	return first, last, err
}
