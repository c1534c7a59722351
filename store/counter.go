package store

import "time"

// Counter is the state of one throttling key: a client address, a
// username, a (username, address) pair, a registration budget. Package
// auth keeps its throttles' state in Counters (auth.Counter is this type).
//
// A throttle counts an attempt before it is evaluated (InFlight) and
// settles it afterwards (a failure moves it to Failures, a success drops
// it), so that attempts running at the same time see each other.
type Counter struct {
	// Failures is the number of failed attempts (or, for a Budget, the
	// number of uses) remembered for the key.
	Failures int
	// InFlight is the number of attempts reserved and not yet settled.
	InFlight int
	// Last is the time of the latest failure or reservation (for a
	// Budget: the start of its window).
	Last time.Time
	// Expires is when the counter may be forgotten; a counter that has
	// expired reads as the zero Counter.
	Expires time.Time
}

// CounterStore keeps Counters by key. The throttles of package auth keep
// their decisions in code and their state in a CounterStore, so that
// replicas sharing one store (PostgreSQL) share their throttles; a single
// process uses auth.MemoryCounters. Package auth/counterstest holds every
// implementation to the contract.
//
// Implementations must be safe for concurrent use.
type CounterStore interface {
	// Update reads the counters of keys (an absent or expired one reads as
	// the zero Counter), calls fn with them and the time now, and stores
	// what fn returns in their place, as one atomic step with respect to
	// every other Update touching any of the keys. A returned counter
	// whose Expires is not after now is deleted. fn must not keep or
	// modify its argument after returning and must be free of side
	// effects: an implementation may call it more than once (to retry a
	// serialisation failure).
	Update(now time.Time, keys []string, fn func(cs []Counter) []Counter) error
}
