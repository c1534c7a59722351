package api

import (
	"sync"
	"sync/atomic"
	"time"

	"gpt2d/auth"
)

// registerAuthMetrics exposes the login throttle's counters and the
// registration refusals. It is the one place they are registered, read
// from the auth Service at scrape time.
func registerAuthMetrics(r *registry, a *auth.Service, throttled *throttledAudit) {
	for _, m := range []struct {
		name, help, typ string
		value           func(auth.LoginStats) float64
	}{
		{"gpt2d_login_evaluated_total", "Login attempts admitted by the throttle and evaluated (password hashed).", "counter",
			func(s auth.LoginStats) float64 { return float64(s.Admitted) }},
		{"gpt2d_login_failed_total", "Evaluated login attempts that failed (wrong password, unknown or disabled user).", "counter",
			func(s auth.LoginStats) float64 { return float64(s.Failed) }},
		{"gpt2d_login_throttled_pair_total", "Login attempts refused by the (username, address) back-off, without hashing.", "counter",
			func(s auth.LoginStats) float64 { return float64(s.RefusedPair) }},
		{"gpt2d_login_throttled_address_total", "Login attempts refused by the per-address back-off, without hashing.", "counter",
			func(s auth.LoginStats) float64 { return float64(s.RefusedAddress) }},
		{"gpt2d_login_slowed_total", "Login attempts delayed because their username is over its failure budget.", "counter",
			func(s auth.LoginStats) float64 { return float64(s.Slowed) }},
		{"gpt2d_login_in_flight", "Login attempts reserved and being evaluated.", "gauge",
			func(s auth.LoginStats) float64 { return float64(s.InFlight) }},
		{"gpt2d_login_throttle_keys", "Throttle counters held in memory (-1: kept in a shared store).", "gauge",
			func(s auth.LoginStats) float64 { return float64(s.Keys) }},
	} {
		r.valueFunc(m.name, m.help, m.typ, func() float64 { return m.value(a.LoginStats()) })
	}
	r.valueFunc("gpt2d_registrations_throttled_total", "Registrations refused by the per-address budget or failure back-off.", "counter",
		func() float64 { return float64(throttled.registrations.Load()) })
}

// throttledAudit keeps refused attempts out of the audit trail one by one:
// an attacker's refused guesses must not grow the store. The first refusal
// after a quiet minute is written, with the number refused since the last
// written one; the metrics count every refusal.
type throttledAudit struct {
	registrations atomic.Uint64

	mu      sync.Mutex
	last    time.Time
	pending int
}

// note counts one refused login and reports whether to write an audit
// event now, and with what count.
func (t *throttledAudit) note(now time.Time) (write bool, count int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending++
	if now.Sub(t.last) < time.Minute {
		return false, 0
	}
	t.last, count, t.pending = now, t.pending, 0
	return true, count
}
