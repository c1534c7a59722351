// Package counterstest is the conformance suite of auth.CounterStore: the
// in-process MemoryCounters runs it, and so must a shared implementation
// (PostgreSQL) before replicas trust it with their throttles.
package counterstest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"gpt2d/auth"
)

// Run checks the CounterStore that open returns (a fresh, empty one per
// call).
func Run(t *testing.T, open func(t *testing.T) auth.CounterStore) {
	t0 := time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)
	inc := func(expires time.Time) func(cs []auth.Counter) []auth.Counter {
		return func(cs []auth.Counter) []auth.Counter {
			out := make([]auth.Counter, len(cs))
			for i, c := range cs {
				c.Failures++
				c.Expires = expires
				out[i] = c
			}
			return out
		}
	}
	read := func(t *testing.T, s auth.CounterStore, now time.Time, keys ...string) []auth.Counter {
		t.Helper()
		var got []auth.Counter
		if err := s.Update(now, keys, func(cs []auth.Counter) []auth.Counter {
			got = append([]auth.Counter(nil), cs...)
			return cs
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("absent keys read as zero", func(t *testing.T) {
		s := open(t)
		if got := read(t, s, t0, "a", "b"); got[0] != (auth.Counter{}) || got[1] != (auth.Counter{}) {
			t.Fatalf("read %+v", got)
		}
	})
	t.Run("stored values come back", func(t *testing.T) {
		s := open(t)
		last := t0.Add(-time.Second)
		want := auth.Counter{Failures: 3, InFlight: 2, Last: last, Expires: t0.Add(time.Hour)}
		if err := s.Update(t0, []string{"k"}, func([]auth.Counter) []auth.Counter { return []auth.Counter{want} }); err != nil {
			t.Fatal(err)
		}
		got := read(t, s, t0, "k")[0]
		if got.Failures != 3 || got.InFlight != 2 || !got.Last.Equal(last) || !got.Expires.Equal(want.Expires) {
			t.Fatalf("read %+v, want %+v", got, want)
		}
	})
	t.Run("expired and zeroed counters are forgotten", func(t *testing.T) {
		s := open(t)
		s.Update(t0, []string{"old", "gone"}, inc(t0.Add(time.Minute)))
		s.Update(t0, []string{"gone"}, func([]auth.Counter) []auth.Counter { return []auth.Counter{{}} })
		got := read(t, s, t0.Add(2*time.Minute), "old", "gone")
		if got[0] != (auth.Counter{}) || got[1] != (auth.Counter{}) {
			t.Fatalf("read %+v", got)
		}
	})
	t.Run("concurrent updates of several keys are atomic", func(t *testing.T) {
		s := open(t)
		const n = 64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				keys := []string{"shared", fmt.Sprintf("own%d", i%4)}
				if i%2 == 1 {
					keys = []string{keys[1], keys[0]} // any order
				}
				errs <- s.Update(t0, keys, inc(t0.Add(time.Hour)))
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		got := read(t, s, t0, "shared", "own0", "own1", "own2", "own3")
		sum := 0
		for _, c := range got[1:] {
			sum += c.Failures
		}
		if got[0].Failures != n || sum != n {
			t.Fatalf("shared %d, own sum %d; want %d each", got[0].Failures, sum, n)
		}
	})
}
