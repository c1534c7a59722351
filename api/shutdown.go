package api

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errShutdown is the cause generations are cancelled with when Shutdown's
// deadline passes; they then end with gpt2.ErrClosed.
var errShutdown = errors.New("api: server shutting down")

// cutGrace bounds how long Shutdown waits, once its deadline has passed,
// for the requests it cut to send their 503s and error events.
const cutGrace = 5 * time.Second

// cut ends what is still running when Shutdown's deadline passes:
// generations (queued or running) are cancelled and answer 503 or end
// their stream with an error event, and finish records their usage. It
// waits up to cutGrace for those answers to be written, then closes every
// connection.
func (s *Server) cut() {
	s.cancelBase(errShutdown)
	grace, cancel := context.WithTimeout(context.Background(), cutGrace)
	defer cancel()
	if !s.gens.wait(grace) {
		s.log.Warn("shutdown: generations still running after the grace period; their usage may be lost")
	}
	s.conns.waitIdle(grace)
	s.conns.closeAll()
}

// inflight counts generations started and not yet finished. Unlike a
// sync.WaitGroup, it may be added to while someone waits. It is safe for
// concurrent use.
type inflight struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0; nil until first needed
}

func (f *inflight) add() {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
}

func (f *inflight) done() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n--; f.n == 0 && f.zero != nil {
		close(f.zero)
		f.zero = nil
	}
}

// wait waits until none is in flight, or ctx ends (then false).
func (f *inflight) wait(ctx context.Context) bool {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return true
	}
	if f.zero == nil {
		f.zero = make(chan struct{})
	}
	zero := f.zero
	f.mu.Unlock()
	select {
	case <-zero:
		return true
	case <-ctx.Done():
		return false
	}
}
