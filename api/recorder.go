package api

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gpt2d/store"
)

// usageRecorder collects token usage and API-key last-use times in memory
// and writes them to the store in one transaction every interval, so a
// generation's response never waits for a disk sync of its accounting.
// Readers that need exact figures (the usage endpoints, the daily token
// quota) add what is pending (dayTokens), or flush first.
//
// A crash loses at most one interval of usage; close writes what is
// pending. Its methods are safe for concurrent use.
type usageRecorder struct {
	db  store.Store
	log *slog.Logger

	mu       sync.Mutex
	pending  map[usageKey]store.Counts
	flushing map[usageKey]store.Counts // handed to a store write not yet committed
	flushes  uint64                    // flushes ended (committed or failed)
	touched  map[uint64]time.Time      // API key id → last use

	flushMu sync.Mutex // one flush at a time, so a flush returns only once earlier data is stored
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	closed  atomic.Bool
}

type usageKey struct {
	user, key uint64
	day       time.Time // midnight UTC
}

func newUsageRecorder(db store.Store, log *slog.Logger, interval time.Duration) *usageRecorder {
	r := &usageRecorder{db: db, log: log, pending: map[usageKey]store.Counts{}, touched: map[uint64]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go r.loop(interval)
	return r
}

func (r *usageRecorder) loop(interval time.Duration) {
	defer close(r.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.flush()
		case <-r.stop:
			r.flush()
			return
		}
	}
}

// record adds what a request cost to user's (and key's; 0 for a session)
// usage on the UTC day of at.
func (r *usageRecorder) record(user, key uint64, at time.Time, c store.Counts) {
	k := usageKey{user: user, key: key, day: store.Day(at)}
	r.mu.Lock()
	sum := r.pending[k]
	sum.Add(c)
	r.pending[k] = sum
	r.mu.Unlock()
	if r.closed.Load() {
		// A generation that outlived the shutdown deadline: no background
		// writer is left to store it.
		r.flush()
	}
}

// touch notes that an API key was used at t.
func (r *usageRecorder) touch(key uint64, t time.Time) {
	r.mu.Lock()
	if t.After(r.touched[key]) {
		r.touched[key] = t
	}
	r.mu.Unlock()
}

// dayTokens returns the tokens user spent on the UTC day of t: stored,
// being stored and pending. It never undercounts: a flush that ends
// between reading memory and reading the store makes it read again, since
// its records may have left memory before the read and reached the store
// after it. (It may count a committing flush twice for an instant.)
func (r *usageRecorder) dayTokens(user uint64, t time.Time) (int64, error) {
	day := store.Day(t)
	sum := func(m map[usageKey]store.Counts) (n int64) {
		for k, c := range m {
			if k.user == user && k.day.Equal(day) {
				n += c.Tokens()
			}
		}
		return n
	}
	for {
		r.mu.Lock()
		gen := r.flushes
		mem := sum(r.pending) + sum(r.flushing)
		r.mu.Unlock()
		stored, err := r.db.DayTokens(user, t)
		if err != nil {
			return 0, err
		}
		r.mu.Lock()
		same := r.flushes == gen
		r.mu.Unlock()
		if same {
			return stored + mem, nil
		}
	}
}

// flush writes everything pending. On failure the data goes back into
// pending, to be retried at the next flush.
func (r *usageRecorder) flush() error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	r.mu.Lock()
	pending, touched := r.pending, r.touched
	r.pending, r.touched = map[usageKey]store.Counts{}, map[uint64]time.Time{}
	r.flushing = pending
	r.mu.Unlock()
	if len(pending) == 0 && len(touched) == 0 {
		r.mu.Lock()
		r.flushing = nil
		r.mu.Unlock()
		return nil
	}
	records := make([]store.Usage, 0, len(pending))
	for k, c := range pending {
		records = append(records, store.Usage{Day: k.day, UserID: k.user, KeyID: k.key, Counts: c})
	}
	err := r.db.AddUsage(records)
	stored := err == nil
	if stored {
		err = r.db.TouchAPIKeys(touched)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushing = nil
	r.flushes++
	if err != nil {
		r.log.Error("usage: store write failed; will retry", "err", err)
		if !stored { // only the key times are retried once usage is stored
			for k, c := range pending {
				sum := r.pending[k]
				sum.Add(c)
				r.pending[k] = sum
			}
		}
		for id, t := range touched {
			if t.After(r.touched[id]) {
				r.touched[id] = t
			}
		}
	}
	return err
}

// close stops the background writer after a last flush; later records
// are written at once.
func (r *usageRecorder) close() {
	r.once.Do(func() {
		r.closed.Store(true)
		close(r.stop)
	})
	<-r.done
}
