package auth_test

import (
	"sync"
	"testing"
	"time"

	"gpt2d/auth"
)

func TestSharedRateLimiterBurstsThenSustains(t *testing.T) {
	l := auth.NewSharedRateLimiter(auth.NewMemoryCounters(0))
	t0 := time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 6 {
		if w, err := l.Take(1, 6, t0); w != 0 || err != nil {
			t.Fatalf("burst event %d: wait %s, %v", i, w, err)
		}
	}
	w, _ := l.Take(1, 6, t0)
	if w != 10*time.Second {
		t.Fatalf("7th event at once: wait %s, want 10s (one per 10 s sustained)", w)
	}
	if w, _ := l.Take(2, 6, t0); w != 0 {
		t.Fatalf("another key waits %s", w)
	}
	if w, _ := l.Take(1, 6, t0.Add(10*time.Second)); w != 0 {
		t.Fatalf("after the interval: wait %s", w)
	}
	if w, _ := l.Take(1, 6, t0.Add(10*time.Second)); w == 0 {
		t.Fatal("a second event in the same interval was admitted")
	}
	// Idle for a minute: the full burst again.
	for i := range 6 {
		if w, _ := l.Take(1, 6, t0.Add(2*time.Minute)); w != 0 {
			t.Fatalf("burst after idling, event %d: wait %s", i, w)
		}
	}
}

func TestSharedRateLimiterAdmitsExactlyTheBurstConcurrently(t *testing.T) {
	l := auth.NewSharedRateLimiter(auth.NewMemoryCounters(0))
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w, err := l.Take(7, 20, now); w == 0 && err == nil {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if admitted != 20 {
		t.Fatalf("%d of 50 concurrent events admitted, want 20", admitted)
	}
}
