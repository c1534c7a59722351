package api

import (
	"log/slog"
	"time"

	"gpt2d/store"
)

// janitor bounds the store's state in the background: it prunes the audit
// trail to Config.AuditRetention and drops expired refresh-token families,
// once at start and then every Config.PruneInterval. Pruning runs in
// short transactions (see store.DB.PruneAudit), so requests keep being
// served while it works.
type janitor struct {
	db        store.Store
	log       *slog.Logger
	retention store.AuditRetention
	now       func() time.Time
	stop      chan struct{}
	done      chan struct{}
}

func startJanitor(db store.Store, log *slog.Logger, retention store.AuditRetention, every time.Duration, now func() time.Time) *janitor {
	j := &janitor{db: db, log: log, retention: retention, now: now, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(j.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			j.run()
			select {
			case <-t.C:
			case <-j.stop:
				return
			}
		}
	}()
	return j
}

// run prunes once. Failures (a full disk, say) are logged and retried at
// the next tick.
func (j *janitor) run() {
	now := j.now()
	if n, err := j.db.PruneAudit(j.retention, now); err != nil {
		j.log.Error("audit retention: prune failed", "err", err)
	} else if n > 0 {
		j.log.Info("audit retention: pruned", "events", n, "max_age", j.retention.MaxAge.String(), "max_events", j.retention.MaxEvents)
	}
	if n, err := j.db.PruneRefreshTokens(now); err != nil {
		j.log.Error("refresh tokens: prune failed", "err", err)
	} else if n > 0 {
		j.log.Info("refresh tokens: pruned expired sessions", "families", n)
	}
}

// close stops the janitor and waits for a running prune to end.
func (j *janitor) close() {
	select {
	case <-j.stop:
	default:
		close(j.stop)
	}
	<-j.done
}
