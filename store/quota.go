package store

import "time"

// Reservation is tokens of a user's UTC day held for one generation from
// its admission until it is settled with what it spent.
type Reservation struct {
	ID     uint64
	UserID uint64
	Day    time.Time // midnight UTC
	Tokens int64
}

// QuotaStore holds daily token quotas against concurrent requests across
// every process that shares it (the PostgreSQL store; one process keeps
// its reservations in memory instead). A generation reserves, before it
// starts, the most it can spend; when it ends the reservation is replaced
// by what it spent, in one step, so that no admission anywhere sees those
// tokens in neither. The quota is overshot by at most the reservation of
// the one request admitted last, however many run at once on however many
// replicas.
type QuotaStore interface {
	// ReserveTokens reserves n tokens of user's UTC day of at when the
	// user's spent plus reserved tokens are under limit; ok is false, and
	// nothing reserved, otherwise. used is spent plus reserved before the
	// call. A reservation not settled within hold (its process died)
	// stops counting.
	ReserveTokens(user uint64, at time.Time, n, limit int64, hold time.Duration) (r Reservation, used int64, ok bool, err error)
	// SettleTokens adds spent (a usage record of r's user and day) to the
	// stored usage and releases r, atomically with respect to
	// ReserveTokens. A zero r releases nothing; zero counts add nothing.
	SettleTokens(r Reservation, spent Usage) error
}
