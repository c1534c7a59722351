package api

import (
	"sync"
	"time"

	"gpt2d/store"
)

// tokenQuota holds the daily token quota against concurrent requests. A
// generation reserves, before it starts, the most it can spend (prompt +
// max tokens × choices); when it ends the reservation is replaced by what
// it spent. A request is admitted while the user's spent plus reserved
// tokens are under the limit, so the quota is overshot by at most the
// reservation of the one request admitted last, however many run at once.
//
// Reserve must be atomic with every other Reserve and Settle of the same
// user: the check and the reservation happen together, and a settlement
// moves tokens from reserved to spent in one step, so that no admission
// sees them in neither. memQuota does this in process under a mutex; a
// quota shared by replicas would do it in a database transaction.
type tokenQuota interface {
	// Reserve reserves n tokens of user's UTC day of at when the user has
	// spent and reserved fewer than limit; ok is false, and nothing
	// reserved, otherwise. used is spent plus reserved before the call.
	Reserve(user uint64, at time.Time, n, limit int64) (r reservation, used int64, ok bool, err error)
	// Settle records spent against user (and API key; 0 for a session) on
	// the day of at and releases r (the zero reservation for none).
	Settle(r reservation, user, key uint64, at time.Time, spent store.Counts)
	// Spent returns the tokens user spent on the UTC day of at.
	Spent(user uint64, at time.Time) (int64, error)
}

// reservation is tokens held for one request of a user on a day.
type reservation struct {
	user   uint64
	day    time.Time
	tokens int64
	id     uint64 // the store's reservation (sharedQuota); 0 in memory
}

// memQuota is the tokenQuota of one process: spent tokens come from the
// store plus the usage recorder's pending records, reservations live in
// memory (a restart drops them with the requests that held them).
type memQuota struct {
	usage *usageRecorder

	mu       sync.Mutex
	reserved map[reservationKey]int64
}

type reservationKey struct {
	user uint64
	day  time.Time
}

func newMemQuota(usage *usageRecorder) *memQuota {
	return &memQuota{usage: usage, reserved: map[reservationKey]int64{}}
}

func (q *memQuota) Reserve(user uint64, at time.Time, n, limit int64) (reservation, int64, bool, error) {
	k := reservationKey{user, store.Day(at)}
	q.mu.Lock()
	defer q.mu.Unlock()
	spent, err := q.usage.dayTokens(user, at)
	if err != nil {
		return reservation{}, 0, false, err
	}
	used := spent + q.reserved[k]
	if used >= limit {
		return reservation{}, used, false, nil
	}
	q.reserved[k] += n
	return reservation{user: user, day: k.day, tokens: n}, used, true, nil
}

func (q *memQuota) Settle(r reservation, user, key uint64, at time.Time, spent store.Counts) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if spent != (store.Counts{}) {
		q.usage.record(user, key, at, spent)
	}
	if r.tokens == 0 {
		return
	}
	k := reservationKey{r.user, r.day}
	if q.reserved[k] -= r.tokens; q.reserved[k] <= 0 {
		delete(q.reserved, k)
	}
}

func (q *memQuota) Spent(user uint64, at time.Time) (int64, error) {
	return q.usage.dayTokens(user, at)
}

// sequenceCounter counts each user's sequences queued or running in the
// engine, for Config.MaxUserSequences. It is safe for concurrent use.
type sequenceCounter struct {
	mu sync.Mutex
	n  map[uint64]int
}

func newSequenceCounter() *sequenceCounter { return &sequenceCounter{n: map[uint64]int{}} }

// acquire counts k more sequences of user unless that would pass limit
// (0: no limit). A single request larger than the limit is let through
// when the user has none in flight, so that the limit never refuses a
// request outright (Generation.MaxChoices bounds its size).
func (c *sequenceCounter) acquire(user uint64, k, limit int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if limit > 0 && c.n[user] > 0 && c.n[user]+k > limit {
		return false
	}
	c.n[user] += k
	return true
}

func (c *sequenceCounter) release(user uint64, k int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[user] -= k; c.n[user] <= 0 {
		delete(c.n, user)
	}
}
