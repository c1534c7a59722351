package postgres

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/auth/counterstest"
)

// TestCountersConformance holds the shared throttle counters to the
// contract the in-process ones meet.
func TestCountersConformance(t *testing.T) {
	counterstest.Run(t, func(t *testing.T) auth.CounterStore { return openTest(t).Counters() })
}

// TestRateLimitHoldsAcrossReplicas takes 50 events at once for one user
// through two stores on one database, with a limit of 20 a minute: 20
// are admitted, as by one process.
func TestRateLimitHoldsAcrossReplicas(t *testing.T) {
	a, b, _ := replicas(t, time.Second)
	limiters := []*auth.SharedRateLimiter{auth.NewSharedRateLimiter(a.Counters()), auth.NewSharedRateLimiter(b.Counters())}
	now := time.Now()
	var wg sync.WaitGroup
	var admitted atomic.Int32
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := limiters[i%2].Take(1, 20, now)
			if err != nil {
				t.Error(err)
			}
			if w == 0 && err == nil {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 20 {
		t.Fatalf("%d of 50 events over two replicas admitted, want 20", admitted.Load())
	}
}
